"""The kubernetes-client helpers of the command-line tools (explain, the demo, the e2e suite): a client from a
kubeconfig or in-cluster, whose every call has a request timeout.

Why a module of its own: the kubernetes client waits forever by default; making the client here, with a
default timeout, is harder to forget than a `_request_timeout` on every call. The two long-running processes
do not use it: they talk to the API through heatsched.kubeapi (async, with its own timeouts).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes import config as kubeconfig

from heatsched.kubeapi import API_TIMEOUT_S

__all__ = ["api_client", "with_timeout"]


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
    """Give every call through `api` a request timeout of `timeout_s` unless the call passes its own."""
    request = api.request

    def timed(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=timeout_s if _request_timeout is None else _request_timeout,
                       **kwargs)

    api.request = timed
    return api
