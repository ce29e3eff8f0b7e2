"""The AdmissionReview wire format (admission.k8s.io/v1), parsed strictly enough to answer every request.

Why our own model and not kopf's server: a malformed review (bad JSON, a missing `request`, wrong types,
non-UTF-8, a huge body) must get a 400 with the reason, never a 500 with a stack trace; and the webhook runs
in a process that does not need kopf. Fields kube-apiserver may add in later versions are ignored (version
skew), the ones we read are typed.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's own request limit is 3 MiB


class ReviewError(ValueError):
    """A request body that is not an AdmissionReview we can answer; the message says why (a 400)."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class UserInfo(_Wire):
    username: str = ""
    groups: list[str] = Field(default_factory=list)


class GroupVersionResource(_Wire):
    group: str = ""
    version: str = ""
    resource: str = ""


class AdmissionRequest(_Wire):
    uid: str = Field(min_length=1)
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    resource: GroupVersionResource = Field(default_factory=GroupVersionResource)
    sub_resource: str = Field("", alias="subResource")
    name: str = ""
    namespace: str = ""
    user_info: UserInfo = Field(default_factory=UserInfo, alias="userInfo")
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(None, alias="oldObject")
    dry_run: bool = Field(False, alias="dryRun")


class AdmissionReview(_Wire):
    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


def parse_review(body: bytes) -> AdmissionReview:
    """Parse a request body, or raise ReviewError with a short reason."""
    if len(body) > MAX_BODY_BYTES:
        raise ReviewError(f"body is {len(body)} bytes, over {MAX_BODY_BYTES}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReviewError(f"body must be a JSON object (an AdmissionReview), not {type(data).__name__}")
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ReviewError(f"not an admission.k8s.io/v1 AdmissionReview: {where}: {first['msg']}") from None


def response(uid: str, *, allowed: bool, message: str = "", code: int = 403, reason: str = "Forbidden") -> bytes:
    """The AdmissionReview answer; a refusal carries its code, reason and message (shown to the user)."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {"code": code, "reason": reason, "message": message[:4096]}
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer})
