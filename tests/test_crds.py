"""The CRDs in crds/ are the models rendered (heatsched.crdgen), structurally valid, fully described,
and every example validates against them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from heatsched.cli import main
from heatsched.crdgen import RESOURCES, crd, openapi_schema, render, stale_files
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
CRDS = {res.kind: crd(res) for res in RESOURCES}


def _root(kind: str) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(schema: dict[str, Any], path: str = ""):
    """Every (path, schema node) below `schema`, itself included."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def structural_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Check `value` against an OpenAPI schema the way the apiserver does, minus CEL (pydantic covers that).

    Unknown fields are errors, as under kubectl's strict field validation.
    """
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    kind = schema["type"]
    expected = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    if not isinstance(value, expected[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
        return [f"{path}: not {kind}"]
    errs = []
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} not in enum")
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
            errs.append(f"{path}: below minimum")
        if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
            errs.append(f"{path}: above maximum")
    if kind == "string":
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errs.append(f"{path}: length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: pattern")
    if kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errs.append(f"{path}: item count")
        for i, item in enumerate(value):
            errs += structural_errors(schema["items"], item, f"{path}[{i}]")
    if kind == "object":
        if len(value) > schema.get("maxProperties", len(value)):
            errs.append(f"{path}: too many properties")
        errs += [f"{path}.{k}: required" for k in schema.get("required", ()) if k not in value]
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                errs += structural_errors(props[k], v, f"{path}.{k}")
            elif isinstance(extra, dict):
                errs += structural_errors(extra, v, f"{path}.{k}")
            elif props is not None and path:  # the root's metadata etc. are the apiserver's business
                errs.append(f"{path}.{k}: unknown field")
    return errs


def test_committed_crds_are_the_rendered_models():
    assert stale_files(REPO / "crds") == {}, "run `heatsched crds` and commit crds/"


def test_crds_check_command_fails_on_stale_files_and_passes_after_rendering(tmp_path, capsys):
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 1
    assert main(["crds", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render())
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 0
    stale = tmp_path / "heatsite.yaml"
    stale.write_text(stale.read_text().replace("maximum: 120", "maximum: 121"))
    capsys.readouterr()
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr()
    assert "-" in out.out and "maximum: 121" in out.out and "heatsched crds" in out.err


@pytest.mark.parametrize("kind", CRDS)
def test_every_schema_property_is_described(kind):
    def is_property_or_object(path: str, node: dict) -> bool:  # scalar items and map values: parent describes
        return not path.endswith(("[]", "{}")) or node["type"] == "object"

    undescribed = [
        p for p, node in _nodes(_root(kind))
        if p and p != ".metadata" and is_property_or_object(p, node) and not node.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("kind", CRDS)
def test_schema_is_structural(kind):
    root = _root(kind)
    assert root["properties"]["metadata"] == {"type": "object"}  # the apiserver allows nothing more here
    for path, node in _nodes(root):
        assert "type" in node, path
        assert not ({"$ref", "anyOf", "allOf", "oneOf", "not", "title", "const"} & set(node)), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            assert structural_errors(node, node["default"], path) == [], path


@pytest.mark.parametrize("kind", CRDS)
def test_cel_rules_iterate_only_over_bounded_collections(kind):
    for path, node in _nodes(_root(kind)):
        for rule in node.get("x-kubernetes-validations", ()):
            if ".all(" in rule["rule"] and node["type"] == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, path
            if ".all(" in rule["rule"] and node["type"] == "array":
                assert "maxItems" in node, path


def _model_fields(model: type[BaseModel], schema: dict[str, Any], path: str = ""):
    """(path, pydantic field, schema node) for every field of `model` and its sub-models."""
    assert set(schema.get("properties", {})) == {f.alias or n for n, f in model.model_fields.items()}, path
    assert set(schema.get("required", ())) == {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    for name, field in model.model_fields.items():
        node = schema["properties"][field.alias or name]
        yield f"{path}.{field.alias or name}", field, node
        inner = [a for a in (field.annotation, *get_args(field.annotation)) if _is_model(a)]
        if inner and node["type"] == "array":
            yield from _model_fields(inner[0], node["items"], f"{path}.{field.alias or name}[]")
        elif inner:
            yield from _model_fields(inner[0], node, f"{path}.{field.alias or name}")


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


@pytest.mark.parametrize("res", RESOURCES, ids=[r.kind for r in RESOURCES])
def test_every_model_field_is_in_the_schema_with_the_same_default_and_requiredness(res):
    for model, part in ((res.spec, "spec"), (res.status, "status")):
        fields = list(_model_fields(model, _root(res.kind)["properties"][part], part))
        assert fields
        for path, field, node in fields:
            if field.is_required() or field.default is None:
                assert "default" not in node, path
            else:
                dumped = field.default.model_dump(mode="json", by_alias=True, exclude_none=True) if _is_model(
                    type(field.default)) else (
                    field.default.value if hasattr(field.default, "value") else field.default
                )
                assert node["default"] == dumped, path


def test_status_fields_that_may_be_unknown_are_nullable_and_spec_fields_are_not():
    status = _root("HeatSite")["properties"]["status"]["properties"]
    assert status["temperatureCelsius"]["nullable"] is True and status["readingTime"]["format"] == "date-time"
    assert not any(node.get("nullable") for _, node in _nodes(openapi_schema(RESOURCES[0].spec, nullable=False)))


@pytest.mark.parametrize(
    "kind,columns",
    [
        ("HeatSite", {"Temp": ".status.temperatureCelsius", "State": ".status.state", "Reading": ".status.readingTime",
                      "Nodes": ".status.nodeCount", "Country": ".spec.country"}),
        ("ThermalDemand", {"Site": ".spec.siteRef", "Kind": ".spec.kind", "kW": ".status.currentKW"}),
    ],
)
def test_printer_columns_show_the_agreed_fields(kind, columns):
    version = CRDS[kind]["spec"]["versions"][0]
    shown = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns.items() <= shown.items()
    reading = [c for c in version["additionalPrinterColumns"] if c["name"] == "Reading"]
    assert all(c["type"] == "date" for c in reading)


@pytest.mark.parametrize("kind", CRDS)
def test_every_printer_column_and_selectable_field_exists_in_the_schema(kind):
    version = CRDS[kind]["spec"]["versions"][0]
    paths = [c["jsonPath"] for c in version["additionalPrinterColumns"]] + [
        f["jsonPath"] for f in version["selectableFields"]
    ]
    known = {p for p, _ in _nodes(_root(kind))}
    assert [p for p in paths if p not in known and not p.startswith(".metadata.")] == []


@pytest.mark.parametrize("kind", CRDS)
def test_both_kinds_are_cluster_scoped_with_status_subresource(kind):
    spec = CRDS[kind]["spec"]
    assert spec["scope"] == "Cluster"
    assert spec["versions"][0]["subresources"] == {"status": {}}
    assert spec["names"]["categories"] == ["heatsched"]


EXAMPLE_DOCS = [
    (path.name, i, doc)
    for path in sorted((REPO / "examples").glob("*.yaml"))
    for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
    if doc
]


@pytest.mark.parametrize("name,index,doc", EXAMPLE_DOCS, ids=[f"{n}#{i}" for n, i, _ in EXAMPLE_DOCS])
def test_example_validates_against_the_rendered_schema(name, index, doc):
    assert structural_errors(_root(doc["kind"]), doc) == []


@pytest.mark.parametrize(
    "kind,path,value,error",
    [
        ("HeatSite", ("spec", "country"), "France", ".spec.country: pattern"),
        ("HeatSite", ("spec", "tank", "volumeLitres"), 0, ".spec.tank.volumeLitres: below minimum"),
        ("HeatSite", ("spec", "tank", "colour"), "red", ".spec.tank.colour: unknown field"),
        ("ThermalDemand", ("spec", "profile", "hourlyKW"), [1.0] * 23, ".spec.profile.hourlyKW: item count"),
        ("ThermalDemand", ("spec", "kind"), "Sauna", ".spec.kind: 'Sauna' not in enum"),
    ],
)
def test_schema_check_catches_what_the_apiserver_would(kind, path, value, error):
    doc = yaml.safe_load(yaml.safe_dump(next(d for _, _, d in EXAMPLE_DOCS if d["kind"] == kind)))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert error in structural_errors(_root(kind), doc)
