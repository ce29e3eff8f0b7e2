"""Residency enforced by the API server itself: MutatingAdmissionPolicy and ValidatingAdmissionPolicy in CEL.

Why: an admission webhook is a server that must stay up; while it is down a fail-closed webhook refuses every
resident pod (about 22 s per operator restart, measured). These policies run inside kube-apiserver (GA in
Kubernetes 1.36), read the pod's namespace (`namespaceObject`) directly and need no TLS, no Service and no
heatsched process. They hold the whole pod path. The webhook (admission/server.py) is left only with the checks
that must look up another object: the node of a preset `spec.nodeName` or of a `pods/binding`, and volumes.

This module builds the manifests; `heatsched policies` writes them into the chart
(charts/heatsched/templates/residency-policies.yaml) and `--check` fails when that file is stale, so the Python
constants (ISO codes, EU members, labels) are the one source of truth. Pure: no I/O.

The rules, for every pod in every namespace (kube-system too), on CREATE and UPDATE:

    residency value  := ^ *[A-Z]{2} *(, *[A-Z]{2} *)*$, at most 256 characters, each token an officially assigned
                        ISO 3166-1 alpha-2 code or "EU" (the same grammar as placement/residency.py)
    countries(v)     := {c in ISO | c in tokens(v) or ("EU" in tokens(v) and c in EU)}
    effective        := countries(pod) if the pod has one, else countries(namespace)
    ceiling          := countries(pod) ⊆ countries(namespace) when both exist (a namespace's residency is a ceiling)
    enforced         := every required nodeSelectorTerm has `COUNTRY_LABEL In V` with ∅ ≠ V ⊆ effective

- `heatsched-residency` (mutating, Fail): writes the namespace's residency on pods that have none, and rebuilds
  `/spec/affinity` with `COUNTRY_LABEL In effective` ANDed into every required nodeSelectorTerm (terms are ORed,
  so one term without it would be a way out). A JSONPatch: the atomic nodeAffinity struct cannot be merged by an
  ApplyConfiguration. It skips invalid input, which the validating policy then refuses with the reason.
- `heatsched-heat-aware-opt-in` (mutating, Ignore): `schedulerName: heat-aware` for pods of namespaces labelled
  `heatsched.io/scheduling=heat-aware` that kept the default scheduler.
- `heatsched-residency` (validating, Fail, Deny): refuses invalid values, a pod outside its namespace's ceiling,
  an affinity that does not enforce the residency, and any change of the annotation after creation.
- `heatsched-namespace-residency` (validating, Fail, Deny): a namespace's residency must be valid, and setting,
  changing or removing it needs `update` on `residencies.heatsched.io` (a virtual resource, granted by RBAC:
  cluster admins have it; the chart's ClusterRole `heatsched-residency-admin` grants it to whoever you bind).

Failure policy Fail: a CEL error refuses the request, never admits a pod without its residency.
"""

from __future__ import annotations

from typing import Any

from heatsched.placement.model import COUNTRY_LABEL
from heatsched.placement.residency import (
    EU_GROUP,
    EU_MEMBERS,
    ISO_ALPHA2,
    MAX_LENGTH,
    RESIDENCY_ANNOTATION,
)

API = "admissionregistration.k8s.io/v1"
SCHEDULING_LABEL = "heatsched.io/scheduling"
HEAT_AWARE = "heat-aware"
RESIDENCY_GROUP, RESIDENCY_RESOURCE = "heatsched.io", "residencies"
RESIDENCY_ADMIN_ROLE = "heatsched-residency-admin"
POD_POLICY = "heatsched-residency"
OPT_IN_POLICY = "heatsched-heat-aware-opt-in"
NAMESPACE_POLICY = "heatsched-namespace-residency"
_LOOKALIKES = "{'UK': 'GB', 'EL': 'GR'}"
GRAMMAR = r"^ *[A-Z]{2} *(, *[A-Z]{2} *)*$"
ALLOWED = ("allowed: comma-separated ISO 3166-1 alpha-2 country codes in upper case (e.g. 'FR', 'FR,DE') "
           "or 'EU' for the 27 EU member states")
AFFINITY = "Object.spec.affinity"
NODE_AFFINITY = AFFINITY + ".nodeAffinity"
REQUIRED = NODE_AFFINITY + ".requiredDuringSchedulingIgnoredDuringExecution"
TERM = REQUIRED + ".nodeSelectorTerms"


def _list(codes: frozenset[str] | set[str]) -> str:
    return "[" + ", ".join(f"'{c}'" for c in sorted(codes)) + "]"


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _residency_variables(source: str, prefix: str) -> list[dict[str, str]]:
    """CEL variables for one residency source (`source` is an optional string expression): has, value, valid,
    tokens, countries, bad (the tokens that are not codes, for the message)."""
    v = f"variables.{prefix}"
    return [
        {"name": f"{prefix}Has", "expression": f"{source}.hasValue()"},
        {"name": f"{prefix}Value", "expression": f"{source}.orValue('')"},
        {"name": f"{prefix}Tokens", "expression": f"{v}Value.split(',').map(t, t.trim())"},
        {"name": f"{prefix}Bad", "expression": f"{v}Tokens.filter(t, !(t in variables.tokens))"},
        {"name": f"{prefix}Valid", "expression":
            f"size({v}Value) <= {MAX_LENGTH} && {v}Value.matches('{GRAMMAR}') && size({v}Bad) == 0"},
        {"name": f"{prefix}Problem", "expression": _problem(v)},
        {"name": f"{prefix}Short", "expression":
            f"'\\'' + (size({v}Value) <= 64 ? {v}Value : {v}Value.substring(0, 64) + '…') + '\\''"},
        {"name": f"{prefix}Countries", "expression":
            f"variables.iso.filter(c, c in {v}Tokens || ('{EU_GROUP}' in {v}Tokens && c in variables.eu))"},
    ]


def _problem(v: str) -> str:
    """What is wrong with an invalid value, in the words of placement/residency.py (the first bad token)."""
    hint = ("(" + v + "Bad.map(t, t == '' ? 'empty entry between commas' : "
            f"t in {_LOOKALIKES} ? '\\'' + t + '\\' is not an ISO 3166-1 code: use \\'' + {_LOOKALIKES}[t] + '\\'' : "
            "t.upperAscii() in variables.tokens ? '\\'' + t + '\\' must be upper case: \\'' + t.upperAscii() + '\\'' : "
            "t.matches('[;:/| ]') ? '\\'' + t + '\\' is not one code: separate codes with commas' : "
            "!t.matches('^[A-Za-z]{2}$') ? '\\'' + t + '\\' is not an ISO 3166-1 alpha-2 code (two letters)' : "
            "'\\'' + t + '\\' is not an officially assigned ISO 3166-1 alpha-2 code'))[0]")
    return (f"{v}Value.trim() == '' ? 'residency is empty' : "
            f"size({v}Value) > {MAX_LENGTH} ? 'residency is ' + string(size({v}Value)) + ' characters long, over {MAX_LENGTH}' : "
            f"size({v}Bad) > 0 ? {hint} : 'use commas between codes and spaces only around them (no tabs or line breaks)'")


def _constants() -> list[dict[str, str]]:
    return [
        {"name": "iso", "expression": _list(ISO_ALPHA2)},
        {"name": "eu", "expression": _list(EU_MEMBERS)},
        {"name": "tokens", "expression": _list(ISO_ALPHA2 | {EU_GROUP})},
    ]


_OWN = f"object.metadata.?annotations[?{_q(RESIDENCY_ANNOTATION)}]"
_NS = f"(namespaceObject == null ? optional.none() : namespaceObject.metadata.?annotations[?{_q(RESIDENCY_ANNOTATION)}])"


def _pod_variables() -> list[dict[str, str]]:
    own, ns = _OWN, _NS
    return [
        *_constants(), *_residency_variables(own, "pod"), *_residency_variables(ns, "ns"),
        # no matchConditions: they cannot see namespaceObject. Variables are lazy, so a pod without any residency
        # costs two map lookups.
        {"name": "applies", "expression": "variables.podHas || variables.nsHas"},
        {"name": "outside", "expression":
            "variables.podHas && variables.nsHas ? variables.podCountries.filter(c, !(c in variables.nsCountries)) : []"},
        {"name": "countries", "expression": "variables.podHas ? variables.podCountries : variables.nsCountries"},
        {"name": "ok", "expression": "variables.applies && (!variables.podHas || variables.podValid) && "
                                     "(!variables.nsHas || variables.nsValid) && size(variables.outside) == 0"},
        {"name": "terms", "expression":
            "object.spec.?affinity.?nodeAffinity.?requiredDuringSchedulingIgnoredDuringExecution"
            ".?nodeSelectorTerms.orValue([])"},
    ]


def _enforced(terms: str) -> str:
    return (f"size({terms}) > 0 && {terms}.all(t, t.?matchExpressions.orValue([]).exists(e, "
            f"e.key == {_q(COUNTRY_LABEL)} && e.operator == 'In' && size(e.?values.orValue([])) > 0 && "
            "e.values.all(c, c in variables.countries)))")


def _affinity_patch() -> str:
    """A JSONPatch that rebuilds /spec/affinity: every existing field kept, every required term (or one empty
    term) gets the country requirement unless it already carries exactly it."""
    requirement = (f"{TERM}.matchExpressions{{key: {_q(COUNTRY_LABEL)}, operator: 'In', "
                   "values: variables.countries}")
    has_it = (f"t.?matchExpressions.orValue([]).exists(e, e.key == {_q(COUNTRY_LABEL)} && e.operator == 'In' && "
              "e.?values.orValue([]) == variables.countries)")
    term = (f"{TERM}{{?matchFields: t.?matchFields, matchExpressions: t.?matchExpressions.orValue([]) + "
            f"({has_it} ? [] : [{requirement}])}}")
    terms = f"(size(variables.terms) == 0 ? [{TERM}{{}}] : variables.terms).map(t, {term})"
    return (
        "!variables.ok ? [] : [JSONPatch{op: 'add', path: '/spec/affinity', value: "
        f"{AFFINITY}{{?podAffinity: object.spec.?affinity.?podAffinity, "
        "?podAntiAffinity: object.spec.?affinity.?podAntiAffinity, "
        f"nodeAffinity: {NODE_AFFINITY}{{?preferredDuringSchedulingIgnoredDuringExecution: "
        "object.spec.?affinity.?nodeAffinity.?preferredDuringSchedulingIgnoredDuringExecution, "
        f"requiredDuringSchedulingIgnoredDuringExecution: {REQUIRED}{{nodeSelectorTerms: {terms}}}}}}}}}]"
    )


def _annotation_patch() -> str:
    key = RESIDENCY_ANNOTATION.replace("~", "~0").replace("/", "~1")
    return ("!variables.ok || variables.podHas ? [] : (has(object.metadata.annotations) ? "
            f"[JSONPatch{{op: 'add', path: '/metadata/annotations/{key}', value: variables.nsValue}}] : "
            f"[JSONPatch{{op: 'add', path: '/metadata/annotations', value: {{{_q(RESIDENCY_ANNOTATION)}: "
            "variables.nsValue}}])")


def _pods(operations: list[str]) -> dict[str, Any]:
    return {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                               "operations": operations}]}


def _binding(kind: str, policy: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": f"{kind}Binding", "metadata": {"name": policy},
            "spec": {"policyName": policy, **extra}}


def mutating_policies() -> list[dict[str, Any]]:
    residency = {
        "apiVersion": API, "kind": "MutatingAdmissionPolicy", "metadata": {"name": POD_POLICY},
        "spec": {
            "failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
            "matchConstraints": _pods(["CREATE"]),
            "variables": _pod_variables(),
            # invalid input is left alone here and refused, with its reason, by the validating policy
            "mutations": [
                {"patchType": "JSONPatch", "jsonPatch": {"expression": _annotation_patch()}},
                {"patchType": "JSONPatch", "jsonPatch": {"expression": _affinity_patch()}},
            ],
        },
    }
    opt_in = {
        "apiVersion": API, "kind": "MutatingAdmissionPolicy", "metadata": {"name": OPT_IN_POLICY},
        "spec": {
            "failurePolicy": "Ignore", "reinvocationPolicy": "Never",
            "matchConstraints": {**_pods(["CREATE"]),
                                 "namespaceSelector": {"matchLabels": {SCHEDULING_LABEL: HEAT_AWARE}}},
            "matchConditions": [{"name": "default-scheduler", "expression":
                                 "object.spec.?schedulerName.orValue('default-scheduler') == 'default-scheduler'"}],
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                "expression": f"Object{{spec: Object.spec{{schedulerName: {_q(HEAT_AWARE)}}}}}"}}],
        },
    }
    return [residency, _binding("MutatingAdmissionPolicy", POD_POLICY),
            opt_in, _binding("MutatingAdmissionPolicy", OPT_IN_POLICY)]


def validating_policies() -> list[dict[str, Any]]:
    ann = _q(RESIDENCY_ANNOTATION)
    pod = {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": POD_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": _pods(["CREATE", "UPDATE"]),
            "variables": _pod_variables(),
            "validations": [
                {"expression": "request.operation != 'UPDATE' || "
                               f"oldObject.metadata.?annotations[?{ann}] == object.metadata.?annotations[?{ann}]",
                 "messageExpression": f"'{RESIDENCY_ANNOTATION} cannot change after the pod is created (' + "
                                      f"oldObject.metadata.?annotations[?{ann}].orValue('none') + ' -> ' + "
                                      f"object.metadata.?annotations[?{ann}].orValue('none') + "
                                      "'): delete and recreate the pod'", "reason": "Forbidden"},
                {"expression": "request.operation == 'UPDATE' || !variables.podHas || variables.podValid",
                 "messageExpression": f"'pod {RESIDENCY_ANNOTATION}: invalid residency ' + "
                                      "variables.podShort + ': ' + variables.podProblem + "
                                      "'; ' + " + _q(ALLOWED), "reason": "Invalid"},
                {"expression": "request.operation == 'UPDATE' || !variables.nsHas || variables.nsValid",
                 "messageExpression": "'namespace ' + namespaceObject.metadata.name + "
                                      f"' default {RESIDENCY_ANNOTATION}: invalid residency ' + "
                                      "variables.nsShort + ': ' + variables.nsProblem + "
                                      "'; ' + " + _q(ALLOWED), "reason": "Invalid"},
                {"expression": "request.operation == 'UPDATE' || size(variables.outside) == 0",
                 "messageExpression": "'namespace ' + namespaceObject.metadata.name + ': pod residency ' + "
                                      "variables.podValue + ' is not within its namespace\\'s residency ' + "
                                      "variables.nsValue + ' (' + variables.outside.join(',') + "
                                      "' outside it): a namespace\\'s residency is a ceiling; ask an admin to "
                                      "widen the namespace, or narrow the pod'", "reason": "Forbidden"},
                {"expression": "!variables.applies || !(variables.podHas ? variables.podValid : variables.nsValid) || "
                               "size(variables.outside) > 0 || "
                               "(request.operation == 'UPDATE' && object.spec.?affinity == oldObject.spec.?affinity) || "
                               + _enforced("variables.terms"),
                 "messageExpression": "'pod residency ' + variables.countries.join(',') + ' is not enforced by a "
                                      f"required node affinity on {COUNTRY_LABEL} in every nodeSelectorTerm'",
                 "reason": "Invalid"},
            ],
        },
    }
    namespace = {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": NAMESPACE_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                    "resources": ["namespaces"], "operations": ["CREATE", "UPDATE"]}]},
            "variables": [
                *_constants(),
                *_residency_variables(f"object.metadata.?annotations[?{ann}]", "ns"),
                {"name": "before", "expression":
                    f"oldObject == null ? optional.none() : oldObject.metadata.?annotations[?{ann}]"},
            ],
            "matchConditions": [{"name": "touches-residency", "expression":
                                 f"object.metadata.?annotations[?{ann}].hasValue() || (oldObject != null && "
                                 f"oldObject.metadata.?annotations[?{ann}].hasValue())"}],
            "validations": [
                {"expression": "!variables.nsHas || variables.nsValid",
                 "messageExpression": f"'namespace ' + object.metadata.name + ' {RESIDENCY_ANNOTATION}: invalid "
                                      "residency ' + variables.nsShort + ': ' + variables.nsProblem + '; ' + " + _q(ALLOWED), "reason": "Invalid"},
                {"expression": f"variables.before == object.metadata.?annotations[?{ann}] || "
                               f"authorizer.group('{RESIDENCY_GROUP}').resource('{RESIDENCY_RESOURCE}')"
                               ".name(object.metadata.name).check('update').allowed()",
                 "messageExpression": f"'setting, changing or removing a namespace\\'s {RESIDENCY_ANNOTATION} "
                                      f"needs update on {RESIDENCY_RESOURCE}.{RESIDENCY_GROUP} (ClusterRole "
                                      f"{RESIDENCY_ADMIN_ROLE}); ' + request.userInfo.username + ' does not have it'",
                 "reason": "Forbidden"},
            ],
        },
    }
    deny = {"validationActions": ["Deny"]}
    return [pod, _binding("ValidatingAdmissionPolicy", POD_POLICY, **deny),
            namespace, _binding("ValidatingAdmissionPolicy", NAMESPACE_POLICY, **deny)]


def residency_admin_role() -> dict[str, Any]:
    """The ClusterRole that may set, change or remove a namespace's residency (bind it to your admins)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": RESIDENCY_ADMIN_ROLE},
            "rules": [{"apiGroups": [RESIDENCY_GROUP], "resources": [RESIDENCY_RESOURCE], "verbs": ["update"]}]}


def manifests() -> list[dict[str, Any]]:
    """Every object, in apply order (policies before their bindings)."""
    return [*mutating_policies(), *validating_policies(), residency_admin_role()]
