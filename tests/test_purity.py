"""The placement core and the planning code stay pure: no kopf, Kubernetes, Prometheus, HTTP or shell modules.

Three independent checks, all driven by the one import-linter contract in pyproject.toml:
an AST scan of every file in heatsched/placement (direct imports, relative ones resolved), a fresh
interpreter importing the package (catches indirect imports), and import-linter itself.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLACEMENT = ROOT / "operator" / "heatsched" / "placement"
PACKAGE = "heatsched.placement"
PURE = {"heatsched.placement": PLACEMENT, "heatsched.planning": ROOT / "operator" / "heatsched" / "planning"}


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c.get("source_modules") == [PACKAGE, "heatsched.planning"])
    return {**contract, "root_packages": config["root_packages"]}


FORBIDDEN: tuple[str, ...] = tuple(_contract()["forbidden_modules"])


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a source file imports, with `from x import y` also giving x.y, relatives resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package) if base else (
                    importlib.util.resolve_name("." * node.level, package)
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def forbidden_in(modules: set[str]) -> set[str]:
    return {m for m in modules for f in FORBIDDEN if m == f or m.startswith(f + ".")}


def test_contract_forbids_what_the_placement_core_must_never_touch() -> None:
    assert {"kopf", "kubernetes", "prometheus_api_client", "aiohttp", "httpx", "heatsched.extender"} <= set(FORBIDDEN)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("import kopf", {"kopf"}),
        ("import aiohttp.web as web", {"aiohttp.web"}),
        ("from kubernetes import client", {"kubernetes", "kubernetes.client"}),
        ("from heatsched import extender", {"heatsched.extender"}),
        ("from ..extender.wire import decode_args", {"heatsched.extender.wire", "heatsched.extender.wire.decode_args"}),
        ("def f():\n    import prometheus_api_client", {"prometheus_api_client"}),
        ("from . import core\nimport math", set()),
        ("import kopfish", set()),
    ],
)
def test_scanner_catches_forbidden_imports(source: str, caught: set[str]) -> None:
    assert forbidden_in(imported_modules(source, PACKAGE)) == caught


@pytest.mark.parametrize(("pure", "expected"), [
    ("heatsched.placement", {"core.py", "residency.py", "model.py"}), ("heatsched.planning", {"fuel.py"})])
def test_pure_files_import_nothing_forbidden(pure: str, expected: set[str]) -> None:
    root = PURE[pure]
    files = sorted(root.glob("**/*.py"))
    assert expected <= {f.name for f in files}
    offenders = {}
    for path in files:
        package = pure + "".join("." + p for p in path.relative_to(root).parent.parts)
        bad = forbidden_in(imported_modules(path.read_text(encoding="utf-8"), package))
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_importing_placement_loads_no_forbidden_module() -> None:
    code = (
        "import sys, heatsched.placement.core, heatsched.placement.residency, heatsched.placement.model\n"
        "import heatsched.planning.fuel\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert forbidden_in(set(out.stdout.split())) == set()


def test_import_linter_contract_holds(tmp_path: Path) -> None:
    """Run lint-imports on the pyproject contract, minus internal modules no helper has written yet."""
    contract = _contract()
    present = [
        m for m in contract["forbidden_modules"]
        if not m.startswith("heatsched.") or importlib.util.find_spec(m) is not None
    ]  # fmt: skip
    lines = [
        "[tool.importlinter]",
        f"root_packages = {contract['root_packages']!r}",
        "include_external_packages = true",
        "[[tool.importlinter.contracts]]",
        f"name = {contract['name']!r}",
        'type = "forbidden"',
        f"source_modules = {contract['source_modules']!r}",
        f"forbidden_modules = {present!r}",
    ]
    config = tmp_path / "importlinter.toml"
    config.write_text("\n".join(lines).replace("'", '"') + "\n", encoding="utf-8")
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(config)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_the_placement_service_runs_without_the_kubernetes_client() -> None:
    """It talks to the API through heatsched.kubeapi: importing `kubernetes.client` alone costs ~85 MiB per replica
    (docs/install.md#dependencies), which the 150 MiB goal per replica cannot afford."""
    code = (
        "import sys, heatsched.placement_service.cli, heatsched.placement_service.main\n"
        "import heatsched.placement_service.webhook\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(out.stdout.split())
    assert "heatsched.kubeapi" in loaded
    assert {m for m in loaded if m == "kubernetes" or m.startswith(("kubernetes.", "kopf"))} == set()


def test_the_controller_runs_without_the_kubernetes_client() -> None:
    """It talks to the API through heatsched.kubeapi; kopf would import the client (about 50 MiB) only to know its
    model classes, so the entrypoint hides it, and kopf, the handlers and the Lease still load and run."""
    code = (
        "import sys\n"
        "from heatsched.controller.cli import without_kubernetes_client\n"
        "without_kubernetes_client()\n"
        "import kopf, heatsched.controller.main\n"
        "heatsched.controller.main.build_registry(heatsched.controller.main.OperatorConfig())\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(out.stdout.split())
    assert {"kopf", "heatsched.kubeapi", "heatsched.controller.leader", "heatsched.controller.handlers"} <= loaded
    assert {m for m in loaded if m.startswith("kubernetes.")} == set()
