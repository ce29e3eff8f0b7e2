"""The Helm chart charts/heatsched, rendered by the pinned helm binary: what `helm template` prints is what
a cluster gets, so these tests read the rendered objects, not the templates.

They prove the chart cannot drift from the repository's single sources of truth (crds/, the scheduler
profile in heatsched/data, the processes' CLIs and the webhook configuration name), that RBAC grants exactly
what the code calls, and that values.schema.json refuses bad values before anything is rendered.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from heatsched.admission.configuration import CONFIG_NAME
from heatsched.cluster.toolchain import MissingBinary, Toolchain, pinned_versions
from heatsched.controller import cli as controller_cli
from heatsched.placement_service import cli as placement_cli

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "heatsched"
DATA_SCHEDULER = REPO / "operator" / "heatsched" / "data" / "heat-aware-scheduler.yaml"
KUBE_VERSION = pinned_versions()["KUBERNETES_VERSION"]
RELEASE, NAMESPACE = "heatsched", "heatsched-system"
STANDARD_LABELS = ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/component")


@functools.cache
def helm() -> str:
    try:
        return str(Toolchain.discover().path("helm"))
    except MissingBinary as exc:
        pytest.skip(f"helm is not built: {exc}")


def run_helm(*args: str) -> subprocess.CompletedProcess:
    # --kube-version: a helm built from Go modules without release ldflags defaults to Kubernetes v1.20
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def _render(sets: tuple[str, ...], release: str, namespace: str) -> tuple[dict, ...]:
    args = ["template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set-json", s]
    out = run_helm(*args)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def render(*sets: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    """Rendered objects; each `sets` item is a `--set-json` KEY=JSON."""
    return list(_render(tuple(sets), release, namespace))


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def deployment(objs: list[dict], component: str) -> dict:
    return next(o for o in find(objs, "Deployment")
                if o["metadata"]["labels"]["app.kubernetes.io/component"] == component)


def pod_templates(objs: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]) for o in objs
            if o["kind"] in ("Deployment", "Job")]


def rule_set(rules: list[dict]) -> set[tuple]:
    """(apiGroup, resource, verb, resourceName or '*') for every combination a rule list grants."""
    return {(g, r, v, n) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"] for n in rule.get("resourceNames", ["*"])}


def grants(objs: list[dict], kind: str, name: str) -> set[tuple]:
    return rule_set(one(objs, kind, name)["rules"])


# ---- lint and sources of truth -------------------------------------------------------------------------
def test_a_cluster_older_than_1_36_is_refused_before_anything_is_installed():
    out = run_helm("template", RELEASE, str(CHART), "--kube-version", "v1.35.2")
    assert out.returncode != 0
    assert "v1.35.2" in out.stderr and ">=1.36.0-0" in out.stderr, out.stderr


def test_helm_lint_is_clean():
    out = run_helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def test_chart_crds_are_byte_identical_to_the_rendered_crds():
    ours = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    theirs = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    assert ours.keys() == theirs.keys()
    stale = [name for name in theirs if ours[name] != theirs[name]]
    assert not stale, f"{stale} differ: run `heatsched crds --out charts/heatsched/crds`"


def test_chart_scheduler_profile_is_a_byte_identical_copy_of_the_data_file():
    assert (CHART / "files" / DATA_SCHEDULER.name).read_bytes() == DATA_SCHEDULER.read_bytes(), (
        "run `cp operator/heatsched/data/heat-aware-scheduler.yaml charts/heatsched/files/`")


def test_scheduler_image_is_the_pinned_kubernetes_version():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["scheduler"]["image"]["tag"] == KUBE_VERSION


@pytest.mark.parametrize("release, namespace, host", [
    ("heatsched", "heatsched-system", "heatsched.heatsched-system.svc"),
    ("prod", "boilers", "prod-heatsched.boilers.svc"),
])
def test_scheduler_configmap_is_the_data_file_with_in_cluster_kubeconfig_and_service_url(release, namespace, host):
    objs = render(release=release, namespace=namespace)
    (text,) = one(objs, "ConfigMap")["data"].values()
    rendered = yaml.safe_load(text)
    expected = yaml.safe_load(DATA_SCHEDULER.read_text())
    expected["clientConnection"]["kubeconfig"] = ""
    for ext in expected["extenders"]:
        ext["urlPrefix"] = f"http://{host}:8888/scheduler"
    assert rendered == expected
    service = one(objs, "Service")
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" == host
    assert {"name": "extender", "port": 8888, "targetPort": "extender", "protocol": "TCP"} in service["spec"]["ports"]


def test_extender_weight_and_timeout_values_reach_the_scheduler_configuration():
    def extender_and_checksum(*sets):
        objs = render(*sets)
        (text,) = one(objs, "ConfigMap")["data"].values()
        (ext,) = yaml.safe_load(text)["extenders"]
        return ext, deployment(objs, "scheduler")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    default, default_checksum = extender_and_checksum()
    tuned, tuned_checksum = extender_and_checksum("scheduler.extender.weight=3",
                                                  'scheduler.extender.httpTimeout="500ms"')
    assert (default["weight"], default["httpTimeout"]) == (10, "2s")
    assert (tuned["weight"], tuned["httpTimeout"]) == (3, "500ms")
    assert tuned_checksum != default_checksum  # a new configuration restarts kube-scheduler


def test_scheduler_mounts_the_configmap_at_the_path_it_is_started_with():
    objs = render()
    dep = deployment(objs, "scheduler")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_arg = next(a for a in container["command"] if a.startswith("--config="))
    path = Path(config_arg.split("=", 1)[1])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = one(objs, "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert path.name in configmap["data"]
    assert container["image"] == f"registry.k8s.io/kube-scheduler:{KUBE_VERSION}"


# ---- each Deployment speaks its process's CLI ----------------------------------------------------------------
def process_args(objs: list[dict], component: str) -> argparse.Namespace:
    """A container's args, parsed by the real `heatsched controller|placement` parser (unknown flags fail)."""
    parser = argparse.ArgumentParser(prog="heatsched", exit_on_error=False)
    sub = parser.add_subparsers(dest="command")
    controller_cli.register(sub)
    placement_cli.register(sub)
    (container,) = deployment(objs, component)["spec"]["template"]["spec"]["containers"]
    return parser.parse_args(container["args"])


def test_controller_args_are_accepted_by_the_cli_and_hold_the_release_lease():
    objs = render('prometheus.url="http://prom.example:9090"')
    args = process_args(objs, "controller")
    assert args.command == "controller" and args.prometheus_url == "http://prom.example:9090"
    assert (args.metrics_host, args.metrics_port) == ("0.0.0.0", 8080) and not args.no_leader_election
    assert (args.leader_election_namespace, args.leader_election_lease) == (NAMESPACE, "heatsched-controller")
    assert deployment(objs, "controller")["spec"]["replicas"] == 2


def test_placement_args_are_accepted_by_the_cli_and_point_at_the_release_service():
    args = process_args(render(), "placement")
    assert args.command == "placement"
    assert (args.extender_host, args.extender_port) == ("0.0.0.0", 8888)
    assert (args.webhook_host, args.webhook_port) == ("0.0.0.0", 9443)
    assert args.webhook_url == "https://heatsched.heatsched-system.svc:443"
    assert args.webhook_cert_dir == "/tls" and not args.no_manage_webhooks and not args.annotate_placements
    assert process_args(render("placement.annotatePlacements=true"), "placement").annotate_placements


def test_service_ports_reach_the_container_ports_the_placement_service_listens_on():
    objs = render()
    args = process_args(objs, "placement")
    (container,) = deployment(objs, "placement")["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports == {"extender": args.extender_port, "webhook": args.webhook_port}
    service_ports = {p["port"]: container_ports[p["targetPort"]] for p in one(objs, "Service")["spec"]["ports"]}
    assert service_ports == {8888: 8888, 443: 9443}
    # ready when synced, not just up
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "extender", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "extender", "scheme": "HTTP"}
    selector = one(objs, "Service")["spec"]["selector"]
    assert selector.items() <= deployment(objs, "placement")["spec"]["template"]["metadata"]["labels"].items()


def test_placement_replicas_are_spread_and_kept_by_a_disruption_budget_and_a_network_policy():
    objs = render()
    spec = deployment(objs, "placement")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"].items() <= spec[
        "template"]["metadata"]["labels"].items()
    policy = one(objs, "NetworkPolicy")
    extender, webhook = policy["spec"]["ingress"]
    assert extender["ports"] == [{"port": "extender", "protocol": "TCP"}]
    assert extender["from"] == [{"podSelector": {"matchLabels": deployment(objs, "scheduler")["spec"]["selector"][
        "matchLabels"]}}]
    assert webhook == {"ports": [{"port": "webhook", "protocol": "TCP"}]}
    assert not find(render("placement.networkPolicy.enabled=false"), "NetworkPolicy")


def test_webhook_disabled_drops_its_flags_port_secret_rbac_and_cleanup_hook():
    objs = render("webhook.enabled=false")
    args = process_args(objs, "placement")
    assert (args.webhook_port, args.webhook_url, args.webhook_cert_dir) == (0, None, None)
    assert [p["name"] for p in one(objs, "Service")["spec"]["ports"]] == ["extender"]
    assert not find(objs, "Secret") and not find(objs, "Job")
    assert not {g for g, *_ in grants(objs, "ClusterRole", "heatsched-placement")} & {"admissionregistration.k8s.io"}


# ---- labels and pod security ---------------------------------------------------------------------------------
VARIANTS = [(), ("webhook.certManager.enabled=true",), ("scheduler.enabled=false",), ("webhook.enabled=false",)]


@pytest.mark.parametrize("sets", VARIANTS, ids=lambda s: ",".join(s) or "defaults")
def test_every_object_and_pod_carries_the_standard_labels(sets):
    objs = render(*sets)
    missing = {f"{o['kind']}/{o['metadata']['name']}": [k for k in STANDARD_LABELS
                                                        if k not in o["metadata"].get("labels", {})] for o in objs}
    missing.update({f"{name} pods": [k for k in STANDARD_LABELS if k not in tpl["metadata"]["labels"]]
                    for name, tpl in pod_templates(objs)})
    assert {k: v for k, v in missing.items() if v} == {}
    assert {o["metadata"]["labels"]["app.kubernetes.io/instance"] for o in objs} == {RELEASE}


def test_every_container_runs_restricted():
    objs = render()
    assert len(pod_templates(objs)) == 4  # controller, placement, scheduler, webhook cleanup hook
    for name, tpl in pod_templates(objs):
        pod = tpl["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]) == (
                True, False, {"drop": ["ALL"]}), name
            assert "memory" in c["resources"]["limits"], name
    for component in ("controller", "placement"):
        (container,) = deployment(objs, component)["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["memory"] == "256Mi"


def test_placement_values_reach_each_deployment_separately():
    toleration = {"key": "heatsched.io/control", "operator": "Exists", "effect": "NoSchedule"}
    objs = render('placement.nodeSelector={"pool":"ops"}', f'placement.tolerations=[{json.dumps(toleration)}]',
                  'scheduler.nodeSelector={"pool":"sched"}', 'controller.nodeSelector={"pool":"ctl"}',
                  'scheduler.affinity={"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}')
    op, sched, ctl = (deployment(objs, c)["spec"]["template"]["spec"] for c in ("placement", "scheduler", "controller"))
    assert (ctl["nodeSelector"], "tolerations" in ctl) == ({"pool": "ctl"}, False)
    assert (op["nodeSelector"], op["tolerations"], "affinity" in op) == ({"pool": "ops"}, [toleration], False)
    assert (sched["nodeSelector"], "tolerations" in sched) == ({"pool": "sched"}, False)
    assert "podAntiAffinity" in sched["affinity"]
    hook = one(objs, "Job")["spec"]["template"]["spec"]  # runs where the placement service may run
    assert (hook["nodeSelector"], hook["tolerations"]) == ({"pool": "ops"}, [toleration])


def test_scheduler_disabled_renders_no_scheduler_objects():
    objs = render("scheduler.enabled=false")
    assert {o["metadata"]["labels"]["app.kubernetes.io/component"] for o in objs} == {
        "controller", "placement", "webhook-cleanup", "fuel", "residency"}
    assert not find(objs, "ConfigMap") and sorted(o["metadata"]["name"] for o in find(objs, "RoleBinding")) == [
        "heatsched-controller", "heatsched-fuel"]


# ---- RBAC: exactly what the code calls ----------------------------------------------------------------------
def test_controller_cluster_role_grants_exactly_what_the_controller_uses():
    read = ("get", "list", "watch")
    expected = {
        *{("heatsched.io", r, v, "*") for r in ("heatsites", "thermaldemands") for v in (*read, "patch", "update")},
        *{("heatsched.io", f"{r}/status", v, "*") for r in ("heatsites", "thermaldemands")
          for v in ("get", "patch", "update")},
        *{("", "nodes", v, "*") for v in (*read, "patch")},
        *{("", "pods", v, "*") for v in read},
        ("", "pods/eviction", "create", "*"),
        *{("", "namespaces", v, "*") for v in read},
        *{("", "events", v, "*") for v in ("create", "patch")},
        *{("apiextensions.k8s.io", "customresourcedefinitions", v, "*") for v in read},
        *{("", r, "list", "*") for r in ("persistentvolumeclaims", "persistentvolumes")},
        ("storage.k8s.io", "storageclasses", "list", "*"),
    }
    objs = render()
    assert grants(objs, "ClusterRole", "heatsched") == expected
    binding = one(objs, "ClusterRoleBinding", "heatsched")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "heatsched", "namespace": NAMESPACE}]
    assert deployment(objs, "controller")["spec"]["template"]["spec"]["serviceAccountName"] == "heatsched"
    lease = one(objs, "Role", "heatsched-controller")
    assert lease["metadata"]["namespace"] == NAMESPACE and rule_set(lease["rules"]) == {
        ("coordination.k8s.io", "leases", "create", "*"), ("coordination.k8s.io", "leases", "get", "heatsched-controller"),
        ("coordination.k8s.io", "leases", "update", "heatsched-controller")}


def test_placement_cluster_role_only_reads_and_writes_its_webhook_configuration():
    expected = {
        ("heatsched.io", "heatsites", "list", "*"), ("heatsched.io", "heatsites", "watch", "*"),
        *{("", r, v, "*") for r in ("nodes", "namespaces", "pods") for v in ("get", "list", "watch")},
        *{("", r, "get", "*") for r in ("persistentvolumeclaims", "persistentvolumes")},
        ("storage.k8s.io", "storageclasses", "list", "*"),
        *{("admissionregistration.k8s.io", "validatingwebhookconfigurations", v, n)
          for v, n in (("create", "*"), ("get", CONFIG_NAME), ("update", CONFIG_NAME), ("patch", CONFIG_NAME))},
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete", CONFIG_NAME),  # the old one
    }
    objs = render()
    assert grants(objs, "ClusterRole", "heatsched-placement") == expected
    assert deployment(objs, "placement")["spec"]["template"]["spec"]["serviceAccountName"] == "heatsched-placement"
    annotating = grants(render("placement.annotatePlacements=true"), "ClusterRole", "heatsched-placement")
    assert annotating - expected == {("", "pods", "patch", "*")}
    events = render("placement.placementEvents=true")
    assert grants(events, "ClusterRole", "heatsched-placement") - expected == {("", "events", "create", "*")}
    assert process_args(events, "placement").placement_events


def test_the_residency_policies_are_installed_with_the_chart_labels_and_the_admin_role():
    objs = render()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"].endswith(("AdmissionPolicy", "PolicyBinding"))}
    assert kinds == {(k, n) for n, ks in (
        ("heatsched-residency", ("MutatingAdmissionPolicy", "ValidatingAdmissionPolicy")),
        ("heatsched-heat-aware-opt-in", ("MutatingAdmissionPolicy",)),
        ("heatsched-namespace-residency", ("ValidatingAdmissionPolicy",)))
        for kind in ks for k in (kind, kind + "Binding")}
    admin = one(objs, "ClusterRole", "heatsched-residency-admin")
    assert rule_set(admin["rules"]) == {("heatsched.io", "residencies", "update", "*")}
    assert not find(render("residency.admissionPolicies=false"), "ValidatingAdmissionPolicy")
    args = deployment(objs, "placement")["spec"]["template"]["spec"]["containers"][0]["args"]
    trusted = [args[i + 1] for i, a in enumerate(args) if a == "--trusted-binder"]
    assert trusted == ["system:kube-scheduler", f"system:serviceaccount:{NAMESPACE}:heatsched-scheduler"]


def test_fuel_priority_class_is_below_every_tenant_and_matches_the_local_stacks_copy():
    from heatsched.controller.fuel import priority_class

    objs = render()
    chart = one(objs, "PriorityClass", "heatsched-fuel")
    mine = priority_class()
    assert {k: chart[k] for k in ("value", "preemptionPolicy", "globalDefault", "description")} == {
        k: mine[k] for k in ("value", "preemptionPolicy", "globalDefault", "description")}
    assert chart["value"] < 0 and chart["preemptionPolicy"] == "Never"
    assert one(objs, "Namespace", "heatsched-fuel")
    role = one(objs, "Role", "heatsched-fuel")  # fuel pods: created and deleted in the fuel namespace only
    assert role["metadata"]["namespace"] == "heatsched-fuel" and rule_set(role["rules"]) == {
        ("", "pods", "create", "*"), ("", "pods", "delete", "*")}
    binding = one(objs, "RoleBinding", "heatsched-fuel")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "heatsched", "namespace": NAMESPACE}]
    assert "--no-fuel" in deployment(render("fuel.disabled=true"), "controller")["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert not find(render("fuel.priorityClass.create=false", "fuel.namespace.create=false"), "PriorityClass")


def test_cleanup_hook_may_only_delete_the_operators_webhook_configurations():
    objs = render()
    role = next(o for o in find(objs, "ClusterRole") if o["metadata"]["name"] not in (
        "heatsched", "heatsched-placement", "heatsched-residency-admin"))
    assert rule_set(role["rules"]) == {
        ("admissionregistration.k8s.io", f"{k}webhookconfigurations", "delete", CONFIG_NAME)
        for k in ("mutating", "validating")}
    job = one(objs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "HEATSCHED_WEBHOOK_CONFIGURATION", "value": CONFIG_NAME} in container["env"]
    hook_objects = [o for o in objs if "helm.sh/hook" in o["metadata"].get("annotations", {})]
    assert {o["kind"] for o in hook_objects} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"}


def test_scheduler_rbac_is_the_built_in_roles_plus_its_own_lease_and_the_authentication_reader():
    objs = render()
    sa = {"kind": "ServiceAccount", "name": "heatsched-scheduler", "namespace": NAMESPACE}
    scheduler_bindings = {o["roleRef"]["name"] for o in find(objs, "ClusterRoleBinding") if o["subjects"] == [sa]}
    assert scheduler_bindings == {"system:kube-scheduler", "system:volume-scheduler"}
    election = yaml.safe_load(DATA_SCHEDULER.read_text())["leaderElection"]
    lease = one(objs, "Role", "heatsched-scheduler-leader-election")
    assert lease["metadata"]["namespace"] == election["resourceNamespace"]
    assert rule_set(lease["rules"]) == {("coordination.k8s.io", "leases", "create", "*"),
                                        ("coordination.k8s.io", "leases", "get", election["resourceName"]),
                                        ("coordination.k8s.io", "leases", "update", election["resourceName"])}
    refs = {(o["metadata"]["namespace"], o["roleRef"]["name"])
            for o in find(objs, "RoleBinding") if o["subjects"] == [sa]}
    assert refs == {("kube-system", "extension-apiserver-authentication-reader"),
                    (election["resourceNamespace"], lease["metadata"]["name"])}
    assert deployment(objs, "scheduler")["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]


# ---- webhook TLS ------------------------------------------------------------------------------------------------
def test_helm_generated_webhook_certificate_is_signed_by_its_ca_for_the_service_name():
    objs = render()
    secret = one(objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls" and secret["data"].keys() == {"ca.crt", "tls.crt", "tls.key"}
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "heatsched.heatsched-system.svc" in names  # the host of --webhook-url
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    pod = deployment(objs, "placement")["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v.get("secret"))
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert pod["metadata"]["annotations"]["checksum/webhook-tls"] == hashlib.sha256(
        secret["data"]["tls.crt"].encode()).hexdigest()


@pytest.mark.parametrize("issuer, chart_issuers", [
    ({}, {"Issuer"}),
    ({"kind": "ClusterIssuer", "name": "corp-ca"}, set()),
])
def test_cert_manager_replaces_the_helm_generated_secret(issuer, chart_issuers):
    objs = render("webhook.certManager.enabled=true", f"webhook.certManager.issuerRef={json.dumps(issuer)}")
    assert not find(objs, "Secret")
    serving = one(objs, "Certificate", "heatsched-webhook")
    mounted = next(v for v in deployment(objs, "placement")["spec"]["template"]["spec"]["volumes"] if v.get("secret"))
    assert serving["spec"]["secretName"] == mounted["secret"]["secretName"]
    assert "heatsched.heatsched-system.svc" in serving["spec"]["dnsNames"]
    assert {o["kind"] for o in find(objs, "Issuer")} == chart_issuers
    if issuer:
        assert serving["spec"]["issuerRef"] == issuer
    else:  # the chart's own CA chain: self-signed issuer -> CA certificate -> CA issuer -> serving certificate
        ca_issuer = one(objs, "Issuer", serving["spec"]["issuerRef"]["name"])
        ca_cert = one(objs, "Certificate", "heatsched-webhook-ca")
        assert ca_cert["spec"]["isCA"] and ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]


# ---- values.schema.json -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, path", [
    ('scheduler.extender.weight="ten"', "/scheduler/extender/weight"),
    ("scheduler.extender.weight=0", "/scheduler/extender/weight"),
    ('scheduler.extender.httpTimeout="2 seconds"', "/scheduler/extender/httpTimeout"),
    ('prometheus.url="prometheus:9090"', "/prometheus/url"),
    ('image.pullPolicy="Sometimes"', "/image/pullPolicy"),
    ("scheduler.extendr={}", "/scheduler"),
    ('webhook.failurePolicy="Ignore"', "/webhook"),
    ('webhook.certManager.issuerRef={"kind":"ClusterIssuer"}', "/webhook/certManager/issuerRef"),
])
def test_schema_refuses_bad_values_and_names_the_field(value, path):
    out = run_helm("template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--set-json", value)
    assert out.returncode != 0
    assert f"at '{path}'" in out.stderr, out.stderr


def test_extender_tls_makes_the_scheduler_verify_the_placement_certificate():
    objs = render("scheduler.extender.tls.enabled=true")
    args = process_args(objs, "placement")
    assert args.extender_cert_dir == "/tls"
    (container,) = deployment(objs, "placement")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    config = yaml.safe_load(one(objs, "ConfigMap", "heatsched-scheduler")["data"]["heat-aware-scheduler.yaml"])
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == "https://heatsched.heatsched-system.svc:8888/scheduler"
    assert extender["tlsConfig"] == {"caFile": "/etc/heatsched-ca/ca.crt"}
    sched = deployment(objs, "scheduler")["spec"]["template"]["spec"]
    (mount,) = [m for m in sched["containers"][0]["volumeMounts"] if m["name"] == "extender-ca"]
    (volume,) = [v for v in sched["volumes"] if v["name"] == "extender-ca"]
    assert mount["mountPath"] == "/etc/heatsched-ca" and volume["secret"]["secretName"] == "heatsched-webhook-tls"
    plain = yaml.safe_load(one(render(), "ConfigMap", "heatsched-scheduler")["data"]["heat-aware-scheduler.yaml"])
    assert plain["extenders"][0]["urlPrefix"].startswith("http://") and "tlsConfig" not in plain["extenders"][0]
    failed = run_helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION,
                      "--set", "scheduler.extender.tls.enabled=true,webhook.enabled=false")
    assert failed.returncode != 0 and "needs webhook.enabled=true" in failed.stderr


def test_monitoring_objects_are_optional_and_the_rule_is_the_tested_alerts_file():
    assert not [o for o in render() if o["kind"] in ("PodMonitor", "ServiceMonitor", "PrometheusRule")]
    objs = render("monitoring.podMonitor.enabled=true", "monitoring.serviceMonitor.enabled=true",
                  "monitoring.prometheusRule.enabled=true", 'monitoring.labels={"release":"kube-prometheus"}')
    pm, sm, rule = one(objs, "PodMonitor"), one(objs, "ServiceMonitor"), one(objs, "PrometheusRule")
    assert pm["spec"]["selector"]["matchLabels"].items() <= deployment(objs, "controller")["spec"]["template"][
        "metadata"]["labels"].items()
    assert pm["spec"]["podMetricsEndpoints"][0]["relabelings"] == [{"targetLabel": "job",
                                                                    "replacement": "heatsched-controller"}]
    assert sm["spec"]["selector"]["matchLabels"].items() <= one(objs, "Service")["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "extender"
    assert sm["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "heatsched-placement"
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus" for o in (pm, sm, rule))


def test_the_dashboard_is_valid_json_shipped_for_the_grafana_sidecar_and_copied_in_docs():
    source = (CHART / "files" / "dashboard.json").read_text()
    dashboard = json.loads(source)
    assert (REPO / "docs" / "grafana-dashboard.json").read_text() == source
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))
    assert all(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert not find(render(), "ConfigMap", "heatsched-dashboard")
    cm = one(render("monitoring.grafanaDashboard.enabled=true"), "ConfigMap", "heatsched-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1" and json.loads(cm["data"]["heatsched.json"]) == dashboard
