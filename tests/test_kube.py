"""heatsched.kube: the kubernetes-client helper of the CLIs. Calls must never wait forever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from heatsched.kube import with_timeout
from kubernetes import client


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP server that accepts connections and never answers."""
    sock = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def _api(host: str) -> client.ApiClient:
    config = client.Configuration()
    config.host = host
    config.retries = False
    return client.ApiClient(config)


def test_a_call_without_its_own_timeout_gets_the_default_one(silent_server: str) -> None:
    core = client.CoreV1Api(with_timeout(_api(silent_server), 0.3))
    start = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_node()
    assert time.monotonic() - start < 3


def test_a_call_with_its_own_timeout_keeps_it(silent_server: str) -> None:
    core = client.CoreV1Api(with_timeout(_api(silent_server), 30))
    start = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_node(_request_timeout=0.3)
    assert time.monotonic() - start < 3
