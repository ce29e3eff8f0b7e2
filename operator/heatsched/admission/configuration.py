"""The ValidatingWebhookConfiguration of the residency webhook, and nothing else: the pod path needs none.

Why matchConditions: the webhook sees only the requests that need a lookup, so its failure policy can be Fail
without making heatsched a dependency of every pod:
- `pods`: CREATE of a pod that carries a residency (the admission policy has already written the namespace's
  onto it) and has a preset `spec.nodeName` or a volume that is not node-local or API data;
- `pods/binding` and the legacy v1 `bindings`: CREATE by anyone but the trusted schedulers. kube-scheduler (and
  the heat-aware profile) bind only to nodes that match the pod's required node affinity, which the policies
  made enforce residency, so their bindings need no second look; another binder (a custom scheduler, a
  controller or a user with `pods/binding`) is checked. kwok and virtual kubelets re-check nothing.
While the webhook is down those requests are refused; every other pod, resident or not, is admitted with its
affinity and scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from heatsched.placement.audit import API_VOLUMES, NODE_LOCAL_VOLUMES
from heatsched.placement.residency import RESIDENCY_ANNOTATION

CONFIG_NAME = "heatsched.io"
DEFAULT_TRUSTED_BINDERS = ("system:kube-scheduler",)
BINDINGS = ["pods/binding", "bindings"]  # the subresource schedulers use, and the legacy v1 Binding resource


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def pod_condition() -> str:
    local = " || ".join(f"has(v.{t})" for t in sorted(NODE_LOCAL_VOLUMES | API_VOLUMES))
    return (f"object.metadata.?annotations[?'{RESIDENCY_ANNOTATION}'].hasValue() && "
            f"(object.spec.?nodeName.orValue('') != '' || "
            f"object.spec.?volumes.orValue([]).exists(v, !({local})))")


def webhook_configuration(client_config: dict[str, Any],
                          trusted_binders: Sequence[str] = DEFAULT_TRUSTED_BINDERS) -> dict[str, Any]:
    """The configuration for a server reachable at `client_config` ({"url": ...} or {"service": ...}, plus
    "caBundle"); handler paths are appended."""
    def cc(path: str) -> dict[str, Any]:
        out = dict(client_config)
        if "url" in out:
            out["url"] = out["url"].rstrip("/") + path
        else:
            out["service"] = {**out["service"], "path": path}
        return out

    def hook(name: str, path: str, resources: list[str], condition: str) -> dict[str, Any]:
        return {
            "name": f"{name}.heatsched.io", "clientConfig": cc(path), "failurePolicy": "Fail",
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
            "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": resources, "operations": ["CREATE"],
                       "scope": "Namespaced"}],
            "matchConditions": [{"name": name, "expression": condition}],
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIG_NAME},
        "webhooks": [
            hook("resident-pods-with-node-or-volumes", "/validate/pods", ["pods"], pod_condition()),
            hook("bindings-by-untrusted-binders", "/validate/bindings", BINDINGS,
                 f"!(request.userInfo.username in {_cel_list(list(trusted_binders))})"),
        ],
    }
