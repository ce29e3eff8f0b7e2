"""The Helm chart against a real apiserver: the rendered manifests are accepted, a release installs, its pods
become ready on a kwok node, its RBAC grants what the processes need, and `helm uninstall` cleans up.

kwok only pretends to run pods, so two things are run here for real instead:
- the heat-aware kube-scheduler binary, with the release's ConfigMap and its ServiceAccount's token: the
  configuration is accepted by the pinned kube-scheduler and the chart's RBAC lets it take its lease;
- the pre-delete cleanup hook's script, against uniquely named webhook configurations.
The release never creates webhook configurations (the operator that writes them does not really run), so it
cannot disturb the other e2e tests; its pods are pinned to a tainted kwok node of their own.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from heatsched.cluster.kwoknodes import kwok_node
from heatsched.cluster.procs import Service, free_port, log_tail
from heatsched.cluster.toolchain import MissingBinary, Toolchain
from kubernetes import client
from stack import wait_for

CHART = Path(__file__).resolve().parent.parent / "charts" / "heatsched"
POLICIES = CHART / "files" / "residency-policies.yaml"
TAINT = {"key": "heatsched.io/e2e-helm", "value": "true", "effect": "NoSchedule"}
LEASE_NAMESPACE, LEASE = "kube-system", "heat-aware-scheduler"  # from the chart's scheduler configuration


class Tools:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        try:
            tc = Toolchain.discover()
            self.helm, self.kubectl = str(tc.path("helm")), str(tc.path("kubectl"))
            self.scheduler = str(tc.path("kube-scheduler"))
        except MissingBinary as exc:
            pytest.skip(str(exc))
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}

    def run(self, binary: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([binary, f"--kubeconfig={self.kubeconfig}", *args], input=input, text=True,
                             capture_output=True, timeout=180, env=self.env, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"{Path(binary).name} {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out


@pytest.fixture(scope="module")
def tools(cluster, tmp_path_factory) -> Tools:
    return Tools(cluster.kubeconfig, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def kwok_host(api):
    """A tainted kwok node only this module's pods tolerate (and other tests' pods never land on)."""
    core = client.CoreV1Api(api)
    name = f"helm-e2e-{uuid.uuid4().hex[:6]}"
    node = kwok_node(name, cpu="8")
    node["spec"]["taints"] = [TAINT]
    core.create_node(node)
    try:
        wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                             for c in (core.read_node(name).status.conditions or [])), 30, what=f"{name} Ready")
        yield name
    finally:
        core.delete_node(name)


@pytest.fixture(scope="module")
def values_file(kwok_host, tmp_path_factory) -> Path:
    placement = {"nodeSelector": {"kubernetes.io/hostname": kwok_host},
                 "tolerations": [{"key": TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]}
    path = tmp_path_factory.mktemp("helm-values") / "values.yaml"
    # the e2e stack already made heatsched-fuel (PriorityClass and namespace): the release makes its own
    fuel = {"priorityClass": {"name": "heatsched-fuel-helm-e2e"}, "namespace": {"name": "heatsched-fuel-helm-e2e"}}
    path.write_text(yaml.safe_dump({"controller": placement, "placement": placement,
                                    "scheduler": {"enabled": True, **placement}, "fuel": fuel}))
    return path


def server_version(api) -> str:
    return client.VersionApi(api).get_code().git_version


def test_rendered_chart_is_accepted_by_the_apiserver(tools, api, namespace, values_file):
    # a server dry run creates nothing, so the fuel Role must go to a namespace that exists already
    manifest = tools.run(tools.helm, "template", "heatsched-dry", str(CHART), "-n", namespace, "--include-crds",
                         "-f", str(values_file), "--kube-version", server_version(api),
                         "--set", f"fuel.namespace.create=false,fuel.namespace.name={namespace}").stdout
    out = tools.run(tools.kubectl, "apply", "--dry-run=server", "-f", "-", input=manifest)
    kinds = {line.split("/", 1)[0] for line in out.stdout.splitlines()}
    assert {"customresourcedefinition.apiextensions.k8s.io", "deployment.apps", "configmap", "secret", "service",
            "clusterrole.rbac.authorization.k8s.io", "role.rbac.authorization.k8s.io", "job.batch"} <= kinds


# ---- a real release ------------------------------------------------------------------------------------------------
class Release:
    def __init__(self, tools: Tools, api, values: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.tools, self.api, self.values = tools, api, values
        self.name, self.namespace = f"heatsched-{suffix}", f"heatsched-e2e-{suffix}"  # fullname == release name
        self.installed, self.notes = False, ""

    def install(self) -> None:
        out = self.tools.run(self.tools.helm, "install", self.name, str(CHART), "-n", self.namespace,
                             "--create-namespace", "--wait=false", "-f", str(self.values))
        self.installed, self.notes = True, out.stdout

    def manifest(self) -> str:
        return self.tools.run(self.tools.helm, "get", "manifest", self.name, "-n", self.namespace).stdout

    def uninstall(self, *extra: str) -> subprocess.CompletedProcess:
        out = self.tools.run(self.tools.helm, "uninstall", self.name, "-n", self.namespace, *extra, check=False)
        if out.returncode == 0:
            self.installed = False
        return out

    def service_account(self, component: str) -> str:
        return self.name if component == "controller" else f"{self.name}-{component}"


@pytest.fixture(scope="module")
def release(tools, api, values_file):
    """A release of the chart. The e2e stack applied the residency policies with kubectl (as an admin without
    Helm would); Helm refuses to adopt them, so they are handed to the release and applied again after it."""
    tools.run(tools.kubectl, "delete", "--ignore-not-found", "-f", str(POLICIES))
    rel = Release(tools, api, values_file)
    try:
        rel.install()
        yield rel
    finally:
        if rel.installed:
            rel.uninstall("--no-hooks", "--wait", "--timeout=60s")
        client.CoreV1Api(api).delete_namespace(rel.namespace)
        tools.run(tools.kubectl, "apply", "-f", str(POLICIES))


def test_install_prints_how_to_opt_in_and_set_residency(release):
    assert "kubectl label namespace my-batch heatsched.io/scheduling=heat-aware" in release.notes
    assert "heatsched.io/residency" in release.notes and "kubectl get heatsites" in release.notes


def test_every_released_object_exists(release, tools):
    out = tools.run(tools.kubectl, "get", "-f", "-", "-o", "name", input=release.manifest())
    names = set(out.stdout.split())
    assert {f"deployment.apps/{release.name}-controller", f"deployment.apps/{release.name}-placement",
            f"deployment.apps/{release.name}-scheduler",
            f"service/{release.name}", f"secret/{release.name}-webhook-tls", f"configmap/{release.name}-scheduler",
            f"clusterrole.rbac.authorization.k8s.io/{release.name}",
            f"rolebinding.rbac.authorization.k8s.io/{release.name}-scheduler-authentication-reader",
            "priorityclass.scheduling.k8s.io/heatsched-fuel-helm-e2e", "namespace/heatsched-fuel-helm-e2e"} <= names


def test_crds_are_established(release, tools):
    tools.run(tools.kubectl, "wait", "--for=condition=Established", "--timeout=60s",
              "crd/heatsites.heatsched.io", "crd/thermaldemands.heatsched.io")


def test_every_deployment_becomes_ready_on_the_kwok_node(release, api, kwok_host):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    for name, replicas in ((f"{release.name}-controller", 2), (f"{release.name}-placement", 2),
                           (f"{release.name}-scheduler", 1)):
        wait_for(lambda n=name, r=replicas: apps.read_namespaced_deployment(n, release.namespace).status.ready_replicas
                 == r, 60, what=f"deployment {name} ready")
    pods = core.list_namespaced_pod(release.namespace).items
    assert {p.spec.node_name for p in pods} == {kwok_host}
    assert {p.metadata.labels["app.kubernetes.io/component"] for p in pods} == {"controller", "placement", "scheduler"}


def test_service_selects_the_placement_pods_on_both_ports(release, api):
    discovery = client.DiscoveryV1Api(api)

    def endpoints():
        slices = discovery.list_namespaced_endpoint_slice(
            release.namespace, label_selector=f"kubernetes.io/service-name={release.name}").items
        targets = {e.target_ref.name for s in slices for e in (s.endpoints or []) if e.conditions.ready}
        ports = {(p.name, p.port) for s in slices for p in (s.ports or [])}
        return (targets, ports) if targets else None

    targets, ports = wait_for(endpoints, 60, what="placement endpoints")
    assert len(targets) == 2 and all(t.startswith(f"{release.name}-placement-") for t in targets)
    assert ports == {("extender", 8888), ("webhook", 9443)}


def allowed(api, user_ns: str, sa: str, verb: str, resource: str, *, group: str = "", subresource: str = "",
            name: str = "", namespace: str = "") -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "spec": {"user": f"system:serviceaccount:{user_ns}:{sa}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{user_ns}", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                        "subresource": subresource, "name": name, "namespace": namespace}}})
    return review.status.allowed


ACCESS = [  # (component, verb, resource, keywords, allowed?)
    ("controller", "patch", "heatsites", {"group": "heatsched.io", "subresource": "status"}, True),
    ("controller", "update", "thermaldemands", {"group": "heatsched.io", "subresource": "status"}, True),
    ("controller", "watch", "heatsites", {"group": "heatsched.io"}, True),
    ("controller", "delete", "heatsites", {"group": "heatsched.io"}, False),
    ("controller", "patch", "nodes", {}, True),
    ("controller", "delete", "nodes", {}, False),
    ("controller", "patch", "pods", {"namespace": "default"}, False),
    ("controller", "create", "pods", {"namespace": "default"}, False),
    ("controller", "create", "pods", {"namespace": "heatsched-fuel-helm-e2e"}, True),  # heat fuel, there only
    ("controller", "delete", "pods", {"namespace": "heatsched-fuel-helm-e2e"}, True),
    ("controller", "delete", "pods", {"namespace": "default"}, False),
    ("controller", "create", "pods", {"subresource": "eviction", "namespace": "default"}, True),  # drift: evict
    ("controller", "list", "namespaces", {}, True),
    ("controller", "create", "events", {"namespace": "default"}, True),
    ("controller", "watch", "customresourcedefinitions", {"group": "apiextensions.k8s.io"}, True),
    ("controller", "list", "persistentvolumes", {}, True),
    ("controller", "update", "leases", {"group": "coordination.k8s.io", "name": "RELEASE-controller",
                                        "namespace": "RELEASE_NS"}, True),
    ("controller", "update", "leases", {"group": "coordination.k8s.io", "name": "other", "namespace": "RELEASE_NS"},
     False),
    ("controller", "create", "validatingwebhookconfigurations", {"group": "admissionregistration.k8s.io"}, False),
    ("controller", "get", "secrets", {"namespace": "kube-system"}, False),
    ("placement", "watch", "heatsites", {"group": "heatsched.io"}, True),
    ("placement", "patch", "heatsites", {"group": "heatsched.io", "subresource": "status"}, False),
    ("placement", "patch", "nodes", {}, False),
    ("placement", "watch", "pods", {}, True),
    ("placement", "patch", "pods", {"namespace": "default"}, False),  # placement annotations are opt-in
    ("placement", "get", "persistentvolumes", {}, True),
    ("placement", "create", "validatingwebhookconfigurations", {"group": "admissionregistration.k8s.io"}, True),
    ("placement", "create", "mutatingwebhookconfigurations", {"group": "admissionregistration.k8s.io"}, False),
    ("placement", "update", "validatingwebhookconfigurations",
     {"group": "admissionregistration.k8s.io", "name": "heatsched.io"}, True),
    ("placement", "update", "validatingwebhookconfigurations",
     {"group": "admissionregistration.k8s.io", "name": "someone-else"}, False),
    ("placement", "delete", "mutatingwebhookconfigurations",  # the one of releases before the admission policies
     {"group": "admissionregistration.k8s.io", "name": "heatsched.io"}, True),
    ("placement", "delete", "validatingwebhookconfigurations",
     {"group": "admissionregistration.k8s.io", "name": "heatsched.io"}, False),
    ("placement", "get", "secrets", {"namespace": "kube-system"}, False),
    ("scheduler", "update", "leases", {"group": "coordination.k8s.io", "name": LEASE, "namespace": LEASE_NAMESPACE},
     True),
    ("scheduler", "update", "leases", {"group": "coordination.k8s.io", "name": "other", "namespace": LEASE_NAMESPACE},
     False),
    ("scheduler", "get", "configmaps",
     {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, True),
    ("scheduler", "create", "pods", {"subresource": "binding", "namespace": "default"}, True),
    ("scheduler", "patch", "heatsites", {"group": "heatsched.io"}, False),
]


@pytest.mark.parametrize("component, verb, resource, kw, expected", ACCESS, ids=[
    f"{c}-{v}-{r}-{kw.get('name') or kw.get('subresource', '')}-{e}" for c, v, r, kw, e in ACCESS])
def test_service_accounts_get_exactly_the_access_they_need(release, api, component, verb, resource, kw, expected):
    kw = {k: v.replace("RELEASE_NS", release.namespace).replace("RELEASE", release.name) for k, v in kw.items()}
    assert allowed(api, release.namespace, release.service_account(component), verb, resource, **kw) is expected


def token_kubeconfig(admin_kubeconfig: Path, token: str) -> dict:
    """The admin kubeconfig's current cluster, with a ServiceAccount token as the user."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"])
    return {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}


def _healthy(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # kube-scheduler's self-signed serving cert
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_kube_scheduler_runs_with_the_released_configuration_and_service_account(release, api, tools, tmp_path):
    """The ConfigMap exactly as released, except two fields a process outside the cluster needs: a kubeconfig
    (the ServiceAccount's token instead of in-cluster credentials) and a unique profile name, so this scheduler
    never binds another test's heat-aware pods."""
    core, coordination = client.CoreV1Api(api), client.CoordinationV1Api(api)
    (text,) = core.read_namespaced_config_map(f"{release.name}-scheduler", release.namespace).data.values()
    config = yaml.safe_load(text)
    assert (config["leaderElection"]["resourceNamespace"], config["leaderElection"]["resourceName"]) == (
        LEASE_NAMESPACE, LEASE)
    token = core.create_namespaced_service_account_token(release.service_account("scheduler"), release.namespace,
                                                         {"spec": {"expirationSeconds": 600}}).status.token
    kubeconfig = tmp_path / "scheduler.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(token_kubeconfig(tools.kubeconfig, token)))
    config["clientConnection"]["kubeconfig"] = str(kubeconfig)
    config["profiles"][0]["schedulerName"] = f"heat-aware-e2e-{uuid.uuid4().hex[:6]}"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    scheduler = Service("kube-scheduler", [
        tools.scheduler, f"--config={tmp_path / 'config.yaml'}", "--bind-address=127.0.0.1", f"--secure-port={port}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
    ], tmp_path / "kube-scheduler.log")
    _delete_lease(coordination)
    scheduler.start()
    try:
        def leader():
            scheduler.check()
            try:
                return coordination.read_namespaced_lease(LEASE, LEASE_NAMESPACE).spec.holder_identity
            except client.ApiException:
                return None

        wait_for(leader, 60, what=f"lease {LEASE_NAMESPACE}/{LEASE} taken")
        wait_for(lambda: scheduler.check() or _healthy(port), 30, what="kube-scheduler /healthz")
        time.sleep(2)  # informers list everything the scheduler watches
        scheduler.check()
        log = (tmp_path / "kube-scheduler.log").read_text(errors="replace")
        assert "forbidden" not in log.lower(), log_tail(tmp_path / "kube-scheduler.log", 30)
    finally:
        scheduler.stop()
        _delete_lease(coordination)


def _delete_lease(coordination) -> None:
    try:
        coordination.delete_namespaced_lease(LEASE, LEASE_NAMESPACE)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def test_cleanup_hook_script_deletes_the_named_webhook_configurations(release, api, tools):
    hook = yaml.safe_load_all(tools.run(tools.helm, "get", "hooks", release.name, "-n", release.namespace).stdout)
    job = next(d for d in hook if d and d["kind"] == "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    adm = client.AdmissionregistrationV1Api(api)
    name = f"heatsched-e2e-{uuid.uuid4().hex[:6]}.example"  # never the live heatsched.io of the other tests
    adm.create_mutating_webhook_configuration({"metadata": {"name": name}, "webhooks": []})
    adm.create_validating_webhook_configuration({"metadata": {"name": name}, "webhooks": []})
    env = {**os.environ, "KUBECONFIG": str(tools.kubeconfig), "HEATSCHED_WEBHOOK_CONFIGURATION": name}
    for expected in ("deleted", "already gone"):  # a second run (a retried Job) must succeed too
        out = subprocess.run([sys.executable, *container["command"][1:]], env=env, text=True, capture_output=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count(expected) == 2, out.stdout
    for read in (adm.read_mutating_webhook_configuration, adm.read_validating_webhook_configuration):
        with pytest.raises(client.ApiException) as gone:
            read(name)
        assert gone.value.status == 404


def test_uninstall_runs_the_hook_and_removes_every_object_but_the_crds(release, api, tools):
    manifest = release.manifest()
    out = release.uninstall("--wait", "--timeout=90s")
    assert out.returncode == 0, out.stdout + out.stderr
    left = tools.run(tools.kubectl, "get", "-f", "-", "-o", "name", "--ignore-not-found", input=manifest).stdout
    assert left.split() == []
    leftovers = {kind: [o.metadata.name for o in items] for kind, items in (
        ("ClusterRole", client.RbacAuthorizationV1Api(api).list_cluster_role(
            label_selector=f"app.kubernetes.io/instance={release.name}").items),
        ("Job", client.BatchV1Api(api).list_namespaced_job(release.namespace).items),
        ("ServiceAccount", [sa for sa in client.CoreV1Api(api).list_namespaced_service_account(release.namespace).items
                            if sa.metadata.name != "default"]),
    ) if items}
    assert leftovers == {}  # hook objects included (hook-delete-policy: hook-succeeded)
    tools.run(tools.kubectl, "get", "crd/heatsites.heatsched.io")  # Helm never deletes CRDs
