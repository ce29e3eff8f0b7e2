"""Exactly one active controller: a coordination.k8s.io Lease, held by renewing it.

Why our own and not kopf peering: peering pauses handlers but every replica still watches and keeps its daemons'
state; a Lease taken *before* kopf starts means a standby makes no API call but the Lease's, and the holder is
the only writer of status, labels and fuel pods. Crash-only: a holder that cannot renew within the renew
deadline stops (exit 1) instead of risking a second writer; its Deployment restarts it as a standby.

    acquire: the Lease is free (no holder, ours, or the holder's record unchanged for leaseDurationSeconds as
             timed by *this* replica's clock) -> write our identity with the Lease's resourceVersion
             (optimistic: two standbys racing, one update wins, the other gets 409)
    renew:   every renew_s while holding; give up when no renewal that *started* within the last
             renew_deadline_s (duration_s - renew_s) has succeeded; a hanging renewal is cut at that deadline

Why expiry is timed locally, as client-go's leader election does: renewTime is the holder's wall clock, and a
standby comparing it with its own would take the Lease early by the clocks' skew. A standby that sees the
record change at t takes it at t + duration_s at the earliest, by when the holder (whose last successful
renewal started before that change) has stopped, deadline_s < duration_s later. A replica that starts while an
abandoned Lease is already old still waits one duration_s: the price of not trusting another node's clock.

Failover time: at most duration_s (15 s) after the holder's last renewal, plus one retry_s (2 s) and the
controller's start-up; about retry_s after a clean stop (SIGTERM), which releases the Lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from heatsched.kubeapi import ApiError, KubeApi, path

log = logging.getLogger("heatsched.leader")
DURATION_S = 15.0
RENEW_S = 3.0
RETRY_S = 2.0
COORDINATION = "coordination.k8s.io"


def _now() -> str:
    """MicroTime, as the Lease API writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseObserver:
    """Whether a Lease may be taken, timed by the local monotonic clock only (see the module docstring)."""

    def __init__(self, identity: str, clock: Callable[[], float] = time.monotonic,
                 default_duration_s: float = DURATION_S) -> None:
        self.identity, self.clock, self.default_duration_s = identity, clock, default_duration_s
        self._seen: tuple[tuple[Any, ...], float] | None = None  # (holder's record, when it was first seen)

    def free(self, lease: dict[str, Any]) -> bool:
        """Whether `self.identity` may take `lease` (a coordination.k8s.io/v1 Lease as JSON) now."""
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not holder or holder == self.identity:
            return True
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"), spec.get("leaseTransitions"))
        now = self.clock()
        if self._seen is None or self._seen[0] != record:
            self._seen = (record, now)
        duration = float(spec.get("leaseDurationSeconds") or self.default_duration_s)
        return now - self._seen[1] > duration


class Leader:
    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str, *,
                 duration_s: float = DURATION_S, renew_s: float = RENEW_S, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < renew_s < duration_s:
            raise ValueError(f"renew_s must be within (0, duration_s), got {renew_s} and {duration_s}")
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration_s, self.renew_s, self.retry_s, self.clock = duration_s, renew_s, retry_s, clock
        self.observer = LeaseObserver(identity, clock, duration_s)
        self.leading = False
        self.url = path(COORDINATION, "v1", "leases", name, namespace=namespace)

    async def _try(self) -> bool:
        now = _now()
        lease = await self.api.get_or_none(self.url)
        if lease is None:
            body = {"apiVersion": f"{COORDINATION}/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": round(self.duration_s),
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
            try:
                await self.api.post(path(COORDINATION, "v1", "leases", namespace=self.namespace), body)
                return True
            except ApiError as exc:
                if exc.status == 409:
                    return False
                raise
        if not self.observer.free(lease):
            return False
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, renewTime=now, leaseDurationSeconds=round(self.duration_s))
        lease["spec"] = spec
        try:  # a PUT carries the resourceVersion read above: a concurrent write makes it 409
            await self.api.put(self.url, lease)
            return True
        except ApiError as exc:
            if exc.status == 409:  # someone else wrote it first
                return False
            raise

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        logged = False
        while True:
            try:
                if await self._try():
                    self._set(True)
                    return
            except Exception as exc:  # noqa: BLE001 - the apiserver is away: keep trying
                log.warning("leader election: %s: %s", type(exc).__name__, exc)
            if not logged:
                log.info("standby: lease %s/%s is held by another controller", self.namespace, self.name)
                logged = True
            await asyncio.sleep(self.retry_s)

    async def hold(self) -> None:
        """Renew every renew_s; return (the caller must stop writing) when the Lease was taken over or when no
        renewal started within the last duration_s - renew_s has succeeded."""
        deadline_s = self.duration_s - self.renew_s
        last = self.clock()
        while True:
            await asyncio.sleep(self.renew_s)
            started = self.clock()
            left = last + deadline_s - started
            if left <= 0:
                log.error("leader election: no renewal for %.0f s", deadline_s)
                break
            try:
                if await asyncio.wait_for(self._try(), timeout=left):
                    last = started  # the write happened after this, so a standby's count starts later
                    continue
                log.error("leader election: the lease was taken over")
                break
            except TimeoutError:
                log.error("leader election: a renewal did not finish within the %.0f s deadline", deadline_s)
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("leader election: cannot renew: %s: %s", type(exc).__name__, exc)
        self._set(False)

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over at once instead of after duration_s."""
        if not self.leading:
            return
        try:
            lease = await self.api.get_or_none(self.url)
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                lease["spec"] = {**spec, "holderIdentity": None}
                await self.api.put(self.url, lease)
                log.info("leader election: released lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # noqa: BLE001 - then it simply expires
            log.warning("leader election: cannot release the lease: %s: %s", type(exc).__name__, exc)
        self._set(False)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            log.info("leader election: %s lease %s/%s as %s", "holding" if leading else "lost", self.namespace,
                     self.name, self.identity)
