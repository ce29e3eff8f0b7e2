"""A small async Kubernetes REST client on aiohttp: JSON bytes in and out, a timeout on every request.

Why not the kubernetes client here: the placement service only lists, watches and reads a handful of resources,
patches a pod and posts an Event, yet importing `kubernetes.client` builds every generated model and API class,
about 85 MiB per process (docs/install.md#dependencies); this module and aiohttp (which the service already
serves with) cost a few. It is also async, so the watches run on the event loop with no thread, no GIL hand-off
and no executor. The controller keeps the kubernetes client for kopf's sake and uses this one for its pod watch
(heatsched.watch), so there is one list+watch.

Configuration: a kubeconfig's current context (server, certificate authority, client certificate and key or a
bearer token, as files or inline data, paths relative to the kubeconfig), or in-cluster (the service account's
token, re-read as the kubelet rotates it, and CA). Exec and auth-provider plugins are refused with a clear error.

Errors: an answer other than 2xx raises ApiError(status, reason, message); a timeout or a connection error raises
the aiohttp/asyncio exception (ClientError, TimeoutError), which callers treat as "try again".
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yaml

log = logging.getLogger("heatsched.kubeapi")
API_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_LINE_BYTES = 64 * 1024 * 1024  # one watch event; a larger one means a broken stream, not an object
TOKEN_REREAD_S = 60.0  # bound service-account tokens rotate (kubelet refreshes the file well before expiry)


class ConfigError(Exception):
    """The kubeconfig or the in-cluster environment cannot be used."""


class ApiError(Exception):
    """The apiserver answered with a status other than 2xx."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status, self.reason, self.message = status, reason, message


def path(group: str, version: str, plural: str, name: str | None = None, *, namespace: str | None = None,
         subresource: str | None = None) -> str:
    """The REST path of a collection or an object: core ("" group) under /api, others under /apis."""
    parts = ["/api", version] if not group else ["/apis", group, version]
    if namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


@dataclass(frozen=True)
class Credentials:
    server: str
    tls: ssl.SSLContext | bool  # False: insecure-skip-tls-verify (plain http has no TLS at all)
    token: str | None = None
    token_file: Path | None = None


class KubeApi:
    """JSON requests against one apiserver. Make it with `connect()` (a kubeconfig or in-cluster)."""

    def __init__(self, creds: Credentials, *, timeout_s: float = API_TIMEOUT_S) -> None:
        self.server = creds.server.rstrip("/")
        self.timeout_s = timeout_s
        self._creds = creds
        self._token, self._token_read = creds.token, time.monotonic()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def connect(cls, kubeconfig_path: str | None = None, **kwargs: Any) -> KubeApi:
        """`kubeconfig_path`, else in-cluster, else $KUBECONFIG or ~/.kube/config."""
        if kubeconfig_path:
            return cls(from_kubeconfig(Path(kubeconfig_path)), **kwargs)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return cls(in_cluster(), **kwargs)
        default = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
        return cls(from_kubeconfig(Path(default)), **kwargs)

    def _headers(self) -> dict[str, str]:
        creds = self._creds
        if creds.token_file is not None and time.monotonic() - self._token_read > TOKEN_REREAD_S:
            try:
                self._token = creds.token_file.read_text().strip()
            except OSError:
                pass  # keep the last token; the apiserver says 401 if it is really gone
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._creds.tls, limit=32)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json", timeout_s: float | None = None) -> dict[str, Any]:
        """The decoded answer of a 2xx answer; ApiError otherwise (orjson's ValueError for a body that is not
        JSON)."""
        data = None if body is None else orjson.dumps(body)
        headers = {**self._headers(), "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s, sock_connect=CONNECT_TIMEOUT_S)
        async with self._client().request(method, self.server + url, params=params, data=data, headers=headers,
                                          timeout=timeout) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise _api_error(resp.status, resp.reason, raw)
        decoded: dict[str, Any] = orjson.loads(raw) if raw else {}
        return decoded

    async def get(self, url: str, *, params: Mapping[str, str] | None = None,
                  timeout_s: float | None = None) -> dict[str, Any]:
        return await self.request("GET", url, params=params, timeout_s=timeout_s)

    async def get_or_none(self, url: str, *, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.get(url, timeout_s=timeout_s)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def post(self, url: str, body: Any) -> dict[str, Any]:
        return await self.request("POST", url, body=body)

    async def put(self, url: str, body: Any) -> dict[str, Any]:
        return await self.request("PUT", url, body=body)

    async def merge_patch(self, url: str, body: Any) -> dict[str, Any]:
        return await self.request("PATCH", url, body=body, content_type="application/merge-patch+json")

    async def delete(self, url: str, *, grace_period_s: int | None = None) -> None:
        params = None if grace_period_s is None else {"gracePeriodSeconds": str(grace_period_s)}
        await self.request("DELETE", url, params=params)

    async def stream(self, url: str, params: Mapping[str, str], *, read_timeout_s: float) -> AsyncIterator[bytes]:
        """Lines of a watch answer, as they come. `read_timeout_s` bounds the silence between two chunks (the
        apiserver sends bookmarks, and ends a watch after its timeoutSeconds), so a dead connection is noticed."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=read_timeout_s)
        headers = {**self._headers(), "Accept": "application/json"}
        async with self._client().get(self.server + url, params=params, headers=headers, timeout=timeout) as resp:
            if resp.status >= 300:
                raise _api_error(resp.status, resp.reason, await resp.read())
            buffer = bytearray()
            async for chunk in resp.content.iter_any():
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", start)) != -1:
                    if end > start:
                        yield bytes(buffer[start:end])
                    start = end + 1
                del buffer[:start]
                if len(buffer) > MAX_LINE_BYTES:
                    raise ValueError(f"watch event over {MAX_LINE_BYTES} bytes")


def _api_error(status: int, reason: str | None, raw: bytes) -> ApiError:
    message = ""
    try:
        decoded = orjson.loads(raw)
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or "")
            reason = str(decoded.get("reason") or reason or "")
    except orjson.JSONDecodeError:
        message = raw[:200].decode(errors="replace")
    return ApiError(status, reason or "", message)


# ---- configuration ----------------------------------------------------------------------------------------
def in_cluster(root: Path = SERVICE_ACCOUNT, env: Mapping[str, str] = os.environ) -> Credentials:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (root / "token").exists():
        raise ConfigError(f"not in a cluster: KUBERNETES_SERVICE_HOST unset or no {root / 'token'}")
    host = f"[{host}]" if ":" in host else host
    tls = ssl.create_default_context(cafile=str(root / "ca.crt"))
    token_file = root / "token"
    return Credentials(f"https://{host}:{port}", tls, token_file.read_text().strip(), token_file)


def from_kubeconfig(config_path: Path, context: str | None = None) -> Credentials:
    """Credentials of `context` (default: current-context) in the kubeconfig at `config_path`."""
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {config_path}: {exc}") from None
    base = config_path.parent

    def named(kind: str, name: str | None) -> dict[str, Any]:
        for entry in config.get(kind + "s") or ():
            if entry.get("name") == name:
                found: dict[str, Any] = entry.get(kind) or {}
                return found
        raise ConfigError(f"kubeconfig {config_path}: no {kind} named {name!r}")

    ctx = named("context", context or config.get("current-context"))
    cluster, user = named("cluster", ctx.get("cluster")), named("user", ctx.get("user"))
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f"kubeconfig {config_path}: exec and auth-provider credentials are not supported; "
                          "use a token or a client certificate")
    server = str(cluster.get("server") or "")
    if not server:
        raise ConfigError(f"kubeconfig {config_path}: the cluster has no server")
    tls: ssl.SSLContext | bool = True
    if server.startswith("https"):
        if cluster.get("insecure-skip-tls-verify"):
            tls = False
        else:
            tls = ssl.create_default_context()
            ca = _material(cluster, "certificate-authority", base)
            if ca is not None:
                tls.load_verify_locations(cadata=ca.decode())
            if cluster.get("tls-server-name"):
                raise ConfigError(f"kubeconfig {config_path}: tls-server-name is not supported")
        cert, key = _material(user, "client-certificate", base), _material(user, "client-key", base)
        if cert is not None and key is not None:
            if tls is False:
                tls = ssl.create_default_context()
                tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            assert isinstance(tls, ssl.SSLContext)
            _load_client_cert(tls, cert, key)
    token = user.get("token")
    token_file = Path(base, user["tokenFile"]) if user.get("tokenFile") else None
    if token is None and token_file is not None:
        token = token_file.read_text().strip()
    return Credentials(server, tls, token, token_file)


def _material(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """PEM bytes of `key` given inline (`key-data`, base64) or as a file (relative to the kubeconfig)."""
    if section.get(key + "-data"):
        return base64.b64decode(section[key + "-data"])
    if section.get(key):
        return Path(base, section[key]).read_bytes()
    return None


def _load_client_cert(tls: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl only loads a certificate chain from files: write both to a private temporary file, load, delete."""
    with tempfile.NamedTemporaryFile(prefix="heatsched-client-", suffix=".pem") as f:
        os.chmod(f.name, 0o600)
        f.write(cert + b"\n" + key)
        f.flush()
        tls.load_cert_chain(f.name)


# ---- Events -----------------------------------------------------------------------------------------------
EVENT_NAMESPACE = "default"  # Events about cluster-scoped objects (HeatSites) live there


def event_body(involved: Mapping[str, Any], reason: str, message: str, *, type_: str = "Normal",
               name_prefix: str | None = None, component: str) -> dict[str, Any]:
    """A core/v1 Event about `involved` (an ObjectReference as JSON), the message cut to the API's 1 024 bytes."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": name_prefix or f"{involved.get('name')}."},
            "involvedObject": dict(involved), "reason": reason, "message": message[:1024], "type": type_,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "source": {"component": component}}


async def post_event(api: KubeApi, namespace: str, involved: Mapping[str, Any], reason: str, message: str,
                     **kwargs: Any) -> None:
    """Post an Event (event_body's arguments); a refusal or a timeout is logged, never raised."""
    try:
        await api.post(path("", "v1", "events", namespace=namespace), event_body(involved, reason, message, **kwargs))
    except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("cannot post the %s event of %s: %s", reason, involved.get("name"), exc)
