"""The e2e suite runs against any cluster reachable by a kubeconfig.

- No `--kubeconfig`: it starts the local control plane (real etcd, kube-apiserver, controller-manager, kwok and
  both kube-schedulers, built by toolchain/build.sh) for the session and always tears it down.
- `--kubeconfig PATH` (or HEATSCHED_E2E_KUBECONFIG): it uses that cluster, e.g. the kind cluster made by
  e2e/kind/run.sh. It refuses a context it did not create (`heatsched-local-*`, `kind-heatsched-e2e`) unless
  `--allow-any-cluster` is given: the suite creates and deletes nodes and namespaces.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

TRUSTED_CONTEXTS = ("heatsched-local", "kind-heatsched-e2e")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("heatsched e2e")
    group.addoption("--kubeconfig", default=os.environ.get("HEATSCHED_E2E_KUBECONFIG"),
                    help="run e2e against this cluster instead of starting a local control plane")
    group.addoption("--allow-any-cluster", action="store_true",
                    default=os.environ.get("HEATSCHED_E2E_ALLOW_ANY_CLUSTER") == "1",
                    help="allow a kubeconfig context this suite did not create")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.cluster)


def _check_context(path: str, allow_any: bool) -> None:
    config = yaml.safe_load(Path(path).read_text())
    context = config.get("current-context", "")
    if not allow_any and not context.startswith(TRUSTED_CONTEXTS):
        raise pytest.UsageError(
            f"refusing to run e2e against context {context!r}: it was not created by heatsched "
            f"(expected {' or '.join(TRUSTED_CONTEXTS)}*); pass --allow-any-cluster if you mean it")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest):
    """A running cluster: yields an object with `.kubeconfig` (Path) and `.local` (bool)."""
    from heatsched.cluster.controlplane import ControlPlane

    given = request.config.getoption("--kubeconfig")
    if given:
        _check_context(given, request.config.getoption("--allow-any-cluster"))
        yield type("External", (), {"kubeconfig": Path(given), "local": False})()
        return
    cp = ControlPlane(name=f"e2e-{uuid.uuid4().hex[:6]}", node_identities=("kwok-spoof",))
    cp.local = True
    try:
        cp.up()
        yield cp
    finally:
        cp.down()


@pytest.fixture(scope="session")
def api(cluster):
    """A kubernetes ApiClient for the cluster's admin; every call has a timeout (heatsched.kube.with_timeout)."""
    from heatsched.kube import api_client

    return api_client(str(cluster.kubeconfig), timeout_s=30)


@pytest.fixture
def namespace(api):
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def stack(cluster, api, tmp_path_factory):
    """CRDs, example sites, kwok nodes, a real Prometheus and the operator process. On a cluster this suite did
    not start (kind), it also runs the heat-aware kube-scheduler as a local process; the apiserver must then
    reach this host's webhook port at $HEATSCHED_E2E_WEBHOOK_HOST (e2e/kind/run.sh sets it)."""
    from exporter import SettableExporter
    from stack import Stack

    exporter = SettableExporter().start()
    s = Stack(cluster, api, exporter, tmp_path_factory.mktemp("stack"))
    try:
        s.up()
        yield s
    finally:
        try:
            s.down()
        finally:
            exporter.stop()


@pytest.fixture
def heat_namespace(api):
    """A namespace opted into the heat-aware scheduler (heatsched.io/scheduling=heat-aware)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"heat-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"heatsched.io/scheduling": "heat-aware"}}})
    yield name
    core.delete_namespace(name)
