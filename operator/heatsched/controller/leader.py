"""Exactly one active controller: a coordination.k8s.io Lease, held by renewing it.

Why our own and not kopf peering: peering pauses handlers but every replica still watches and keeps its daemons'
state; a Lease taken *before* kopf starts means a standby makes no API call but the Lease's, and the holder is
the only writer of status, labels and fuel pods. Crash-only: a holder that cannot renew within the lease
duration stops (exit 1) instead of risking a second writer; its Deployment restarts it as a standby.

    acquire: the Lease is free (no holder, or renewTime + leaseDurationSeconds < now) -> write our identity with
             the Lease's resourceVersion (optimistic: two standbys racing, one update wins, the other gets 409)
    renew:   every RENEW_S while holding; after DURATION_S without a successful renew, give up

Failover time: at most DURATION_S after the holder died (SIGKILL), plus one RETRY_S and the controller's start-up;
about RETRY_S after a clean stop (SIGTERM), which releases the Lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from heatsched.kube import call

log = logging.getLogger("heatsched.leader")
DURATION_S = 15
RENEW_S = 3.0
RETRY_S = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


def free(lease: Any, identity: str, now: datetime) -> bool:
    """Whether `identity` may take `lease` (a V1Lease) at `now`."""
    spec = lease.spec
    if spec is None or not spec.holder_identity or spec.holder_identity == identity:
        return True
    renewed = spec.renew_time or spec.acquire_time
    if renewed is None:
        return True
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=UTC)
    duration = float(spec.lease_duration_seconds or DURATION_S)
    return bool((now - renewed).total_seconds() > duration)


class Leader:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.leading = False

    async def _try(self) -> bool:
        now = _now()
        try:
            lease = await call(self.coordination.read_namespaced_lease, self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                  spec=client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=DURATION_S,
                                                          acquire_time=now, renew_time=now, lease_transitions=0))
            try:
                await call(self.coordination.create_namespaced_lease, self.namespace, body)
                return True
            except ApiException as exc2:
                if exc2.status == 409:
                    return False
                raise
        if not free(lease, self.identity, now):
            return False
        spec = lease.spec or client.V1LeaseSpec()
        if spec.holder_identity != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity, spec.renew_time, spec.lease_duration_seconds = self.identity, now, DURATION_S
        lease.spec = spec
        try:
            await call(self.coordination.replace_namespaced_lease, self.name, self.namespace, lease)
            return True
        except ApiException as exc:
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
            await asyncio.sleep(RETRY_S)

    async def hold(self) -> None:
        """Renew until a renewal has failed for DURATION_S; then return (the caller must stop writing)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                if await self._try():
                    last = time.monotonic()
                    continue
                log.error("leader election: the lease was taken over")
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("leader election: cannot renew: %s: %s", type(exc).__name__, exc)
            if time.monotonic() - last > DURATION_S - RENEW_S:
                log.error("leader election: no renewal for %d s", DURATION_S)
                break
        self._set(False)

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over at once instead of after DURATION_S."""
        if not self.leading:
            return
        try:
            lease = await call(self.coordination.read_namespaced_lease, self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                await call(self.coordination.replace_namespaced_lease, self.name, self.namespace, lease)
                log.info("leader election: released lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # noqa: BLE001 - then it simply expires
            log.warning("leader election: cannot release the lease: %s: %s", type(exc).__name__, exc)
        self._set(False)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            log.info("leader election: %s lease %s/%s as %s", "holding" if leading else "lost", self.namespace,
                     self.name, self.identity)
