"""Kubernetes calls of the heatsched processes: blocking kubernetes-client calls run off the event loop, and Events.

Why a module of its own: the controller's handlers, the fuel controller and the webhook all call the API the same way and
post Events the same way; one helper for each keeps how (and with which timeout) in one place.

- `call(fn, ...)`: a Kubernetes API call; it always carries a `_request_timeout` (API_TIMEOUT_S unless the
  caller gives one), so a hung apiserver connection can never hold a handler forever.
- `blocking(fn, ...)`: other blocking work (Prometheus, which has its own timeout).
Both run in the operator's own bounded pool (IO_THREADS threads), never asyncio's default executor, so a burst
of slow calls cannot starve anything else that uses the default one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes import config as kubeconfig
from kubernetes.client.exceptions import ApiException

from heatsched.kubeapi import API_TIMEOUT_S, event_body

__all__ = ["API_TIMEOUT_S", "api_client", "blocking", "call", "post_event", "with_timeout"]
EVENT_NAMESPACE = "default"  # Events of cluster-scoped objects (HeatSites) live there

log = logging.getLogger("heatsched.operator")


def api_client(kubeconfig_path: str | None, *, timeout_s: float = API_TIMEOUT_S) -> client.ApiClient:
    """A client for `kubeconfig_path`, else in-cluster, else ~/.kube/config; every call through it has a
    request timeout (`with_timeout`)."""
    if kubeconfig_path:
        made: client.ApiClient = kubeconfig.new_client_from_config(kubeconfig_path)
        return with_timeout(made, timeout_s)
    try:
        kubeconfig.load_incluster_config()
    except kubeconfig.ConfigException:
        kubeconfig.load_kube_config()
    return with_timeout(client.ApiClient(), timeout_s)


def with_timeout(api: client.ApiClient, timeout_s: float = API_TIMEOUT_S) -> client.ApiClient:
    """Give every call through `api` a request timeout of `timeout_s` unless the call passes its own.

    Why: the kubernetes client waits forever by default, and the CLIs (explain, the demo) make plain calls;
    one default here is harder to forget than a `_request_timeout` on every call."""
    request = api.request

    def timed(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=timeout_s if _request_timeout is None else _request_timeout,
                       **kwargs)

    api.request = timed
    return api


IO_THREADS = 8
_POOL = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="heatsched-io")


async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in the operator's I/O pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking kubernetes-client call off the event loop, with a request timeout."""
    kwargs.setdefault("_request_timeout", API_TIMEOUT_S)
    return await blocking(fn, *args, **kwargs)


async def post_event(core: client.CoreV1Api, namespace: str, involved: client.V1ObjectReference, reason: str,
                     message: str, *, type_: str = "Normal", name_prefix: str | None = None,
                     component: str = "heatsched-controller") -> None:
    """Post a core/v1 Event about `involved` (logged, never raised, when the API refuses it)."""
    body = event_body(core.api_client.sanitize_for_serialization(involved), reason, message, type_=type_,
                      name_prefix=name_prefix, component=component)
    try:
        await call(core.create_namespaced_event, namespace, body)
    except ApiException as exc:
        log.warning("cannot post the %s event of %s: %s", reason, involved.name, exc.reason)
