"""heatsched.kubeapi: kubeconfig and in-cluster credentials, errors with the apiserver's reason, timeouts, watch lines.

The HTTP side runs against a real aiohttp server; end to end it is exercised by every cluster test (the placement
service and the controller's pod watch use it against the real kube-apiserver)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from heatsched import kubeapi
from heatsched.kubeapi import ApiError, ConfigError, Credentials, KubeApi, event_body, from_kubeconfig, in_cluster, path
from heatsched.tls import serving_certificate


def kubeconfig(tmp_path: Path, cluster: dict, user: dict) -> Path:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
              "clusters": [{"name": "k", "cluster": cluster}], "users": [{"name": "u", "user": user}]}
    out = tmp_path / "kubeconfig"
    out.write_text(yaml.safe_dump(config))
    return out


def test_paths_follow_the_api_layout():
    assert path("", "v1", "pods") == "/api/v1/pods"
    assert path("", "v1", "pods", "p", namespace="t") == "/api/v1/namespaces/t/pods/p"
    assert path("heatsched.io", "v1alpha1", "heatsites", "a b", subresource="status") == (
        "/apis/heatsched.io/v1alpha1/heatsites/a%20b/status")


def test_a_token_kubeconfig_reads_its_ca_file_relative_to_itself(tmp_path):
    ca, _, _ = serving_certificate(("localhost",), common_name="localhost")
    (tmp_path / "ca.crt").write_bytes(ca)
    creds = from_kubeconfig(kubeconfig(tmp_path, {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"},
                                       {"token": "s3cret"}))
    assert creds.server == "https://127.0.0.1:6443" and creds.token == "s3cret"
    assert isinstance(creds.tls, ssl.SSLContext) and creds.tls.verify_mode == ssl.CERT_REQUIRED
    assert creds.tls.get_ca_certs()  # the CA is loaded


def test_inline_client_certificate_and_ca_data_are_loaded(tmp_path):
    ca, cert, key = serving_certificate(("localhost",), common_name="client")
    b64 = lambda b: base64.b64encode(b).decode()
    creds = from_kubeconfig(kubeconfig(tmp_path, {"server": "https://h:6443", "certificate-authority-data": b64(ca)},
                                       {"client-certificate-data": b64(cert), "client-key-data": b64(key)}))
    assert isinstance(creds.tls, ssl.SSLContext) and creds.token is None


def test_insecure_skip_tls_verify_is_honoured_and_plain_http_has_no_tls(tmp_path):
    assert from_kubeconfig(kubeconfig(tmp_path, {"server": "https://h", "insecure-skip-tls-verify": True},
                                      {"token": "t"})).tls is False
    assert from_kubeconfig(kubeconfig(tmp_path, {"server": "http://h:8080"}, {})).tls is True


@pytest.mark.parametrize(("cluster", "user", "says"), [
    ({"server": "https://h"}, {"exec": {"command": "aws"}}, "exec and auth-provider credentials are not supported"),
    ({}, {"token": "t"}, "the cluster has no server"),
])
def test_unusable_kubeconfigs_are_refused_with_the_reason(tmp_path, cluster, user, says):
    with pytest.raises(ConfigError, match=says):
        from_kubeconfig(kubeconfig(tmp_path, cluster, user))


def test_a_missing_context_or_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no context named 'other'"):
        from_kubeconfig(kubeconfig(tmp_path, {"server": "https://h"}, {}), context="other")
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        from_kubeconfig(tmp_path / "absent")


def test_in_cluster_uses_the_service_account_and_the_service_address(tmp_path):
    ca, _, _ = serving_certificate(("localhost",), common_name="localhost")
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_bytes(ca)
    creds = in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert creds.server == "https://[fd00::1]:443" and creds.token == "tok" and creds.token_file == tmp_path / "token"
    with pytest.raises(ConfigError, match="not in a cluster"):
        in_cluster(tmp_path, {})


class Server:
    def __init__(self) -> None:
        self.auth: list[str | None] = []
        app = web.Application()
        app.router.add_get("/missing", self.missing)
        app.router.add_get("/teapot", self.teapot)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/ok", self.ok)
        app.router.add_get("/lines", self.lines)
        self.app = app

    async def missing(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "reason": "NotFound", "message": 'pods "p" not found'}, status=404)

    async def teapot(self, _: web.Request) -> web.Response:
        return web.Response(text="<html>proxy says no</html>", status=502)

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def ok(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        return web.json_response({"ok": True})

    async def lines(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for chunk in (b'{"a":', b'1}\n\n{"b"', b":2}\n", b"x" * int(request.query.get("tail", "0"))):
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def test_errors_carry_the_apiservers_reason_and_404_can_mean_absent():
    server = Server()
    async with TestServer(server.app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")).rstrip("/"), True, "t"))
        with pytest.raises(ApiError) as err:
            await api.get("/missing")
        assert err.value.status == 404 and err.value.reason == "NotFound" and 'pods "p" not found' in str(err.value)
        assert await api.get_or_none("/missing") is None
        with pytest.raises(ApiError, match="502 Bad Gateway: <html>proxy says no"):
            await api.get_or_none("/teapot")
        assert await api.get("/ok") == {"ok": True} and server.auth == ["Bearer t"]
        await api.close()


async def test_every_request_has_a_timeout():
    async with TestServer(Server().app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")), True), timeout_s=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await api.get("/slow")
        assert loop.time() - started < 2
        await api.close()


async def test_a_rotated_service_account_token_is_picked_up(tmp_path, monkeypatch):
    monkeypatch.setattr(kubeapi, "TOKEN_REREAD_S", 0.0)
    token = tmp_path / "token"
    token.write_text("old")
    server = Server()
    async with TestServer(server.app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")), True, "old", token))
        await api.get("/ok")
        token.write_text("new\n")
        await api.get("/ok")
        await api.close()
    assert server.auth == ["Bearer old", "Bearer new"]


async def test_watch_lines_are_whole_even_when_split_across_chunks(monkeypatch):
    async with TestServer(Server().app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")), True))
        assert [line async for line in api.stream("/lines", {}, read_timeout_s=5)] == [b'{"a":1}', b'{"b":2}']
        monkeypatch.setattr(kubeapi, "MAX_LINE_BYTES", 100)
        with pytest.raises(ValueError, match="watch event over 100 bytes"):
            [line async for line in api.stream("/lines", {"tail": "500"}, read_timeout_s=5)]
        await api.close()


def test_an_event_names_its_object_and_cuts_long_messages():
    body = event_body({"kind": "Pod", "name": "p", "namespace": "t"}, "HeatAwarePlacement", "x" * 2000,
                      component="heatsched-placement")
    assert body["metadata"] == {"generateName": "p."} and len(body["message"]) == 1024
    assert body["involvedObject"]["name"] == "p" and body["source"] == {"component": "heatsched-placement"}
    assert body["firstTimestamp"].endswith("Z")
