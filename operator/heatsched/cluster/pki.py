"""Certificates and tokens for a throw-away local control plane.

Why: kube-apiserver only serves TLS, and admission webhooks, RBAC and NodeRestriction need real
identities. We make a CA, a serving certificate for 127.0.0.1/localhost, a service-account key pair, and a
static token file (admin, scheduler, controller-manager, kwok, and one kubelet-like identity per test node
so tests can prove a kubelet cannot spoof protected labels). EC P-256 keys: fast to generate.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from heatsched.tls import new_key, pem_key, serving_certificate


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()


# static identities of the local cluster (token file users)
ADMIN = Identity("heatsched-admin", ("system:masters",))
SCHEDULER = Identity("system:kube-scheduler")
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
KWOK = Identity("heatsched-kwok", ("system:masters",))


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path




@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path
    token_file: Path
    tokens: dict[str, str]  # user -> bearer token

    @classmethod
    def create(cls, directory: Path, extra: Sequence[Identity] = (), hosts: tuple[str, ...] = ()) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca_pem, cert_pem, key_pem = serving_certificate(
            ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "127.0.0.1", "10.96.0.1", *hosts), common_name="kube-apiserver")
        sa_key = new_key()
        tokens: dict[str, str] = {}
        rows = []
        for ident in (ADMIN, SCHEDULER, CONTROLLER_MANAGER, KWOK, *extra):
            token = secrets.token_hex(16)
            tokens[ident.user] = token
            groups = ",".join(ident.groups)
            rows.append(f'{token},{ident.user},{ident.user}' + (f',"{groups}"' if groups else ""))

        pem = serialization.Encoding.PEM
        return cls(
            ca_cert=_write(directory / "ca.crt", ca_pem),
            serving_cert=_write(directory / "apiserver.crt", cert_pem),
            serving_key=_write(directory / "apiserver.key", key_pem, private=True),
            sa_key=_write(directory / "sa.key", pem_key(sa_key), private=True),
            sa_pub=_write(
                directory / "sa.pub",
                sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
            ),
            token_file=_write(directory / "tokens.csv", ("\n".join(rows) + "\n").encode(), private=True),
            tokens=tokens,
        )


def kubeconfig(server: str, ca_cert: Path, token: str, user: str, context: str) -> dict[str, Any]:
    """A kubeconfig dict for one identity; the context name marks clusters this harness created."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
