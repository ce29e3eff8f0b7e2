"""The controller's Lease election (controller/leader.py): one holder, expiry timed by the standby's own clock,
and a holder that stops before anyone else may take over. The Lease API is a fake with the apiserver's
optimistic concurrency (resourceVersion, 409 on a stale write, 404 on a missing Lease)."""

from __future__ import annotations

import asyncio
import copy
import threading
from datetime import UTC, datetime, timedelta

import pytest
from heatsched.controller.leader import Leader, LeaseObserver
from kubernetes import client
from kubernetes.client.exceptions import ApiException


class FakeLeases:
    """One namespace's Leases, with resourceVersion checks like the apiserver's."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0
        self.hang = threading.Event()  # set: replace blocks until released
        self.release = threading.Event()
        self.writes = 0

    def read_namespaced_lease(self, name: str, namespace: str, _request_timeout: float) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[name])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, _request_timeout: float) -> None:
        if body.metadata.name in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease,
                                 _request_timeout: float) -> None:
        if self.hang.is_set():
            self.release.wait(5)
        if body.metadata.resource_version != self.leases[name].metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self._store(body)

    def _store(self, body: client.V1Lease) -> None:
        self.version += 1
        self.writes += 1
        body = copy.deepcopy(body)
        body.metadata.resource_version = str(self.version)
        self.leases[body.metadata.name] = body


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def holder_lease(holder: str | None, renewed: datetime, transitions: int = 0) -> client.V1Lease:
    return client.V1Lease(metadata=client.V1ObjectMeta(name="l", namespace="ns", resource_version="1"),
                          spec=client.V1LeaseSpec(holder_identity=holder, renew_time=renewed, acquire_time=renewed,
                                                  lease_duration_seconds=15, lease_transitions=transitions))


NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_a_lease_is_free_when_unheld_or_ours():
    observer = LeaseObserver("me", Clock())
    assert observer.free(holder_lease(None, NOW))
    assert observer.free(holder_lease("me", NOW))
    assert observer.free(client.V1Lease(spec=None))


def test_a_held_lease_is_free_only_after_its_record_stayed_unchanged_for_the_duration_on_our_clock():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    old = holder_lease("other", NOW - timedelta(hours=3))  # renewTime far in the past: skew, or a dead holder
    assert not observer.free(old)  # first sight: the count starts now, whatever renewTime says
    clock.t += 14.9
    assert not observer.free(old)
    clock.t += 0.2
    assert observer.free(old)


def test_a_holder_that_keeps_renewing_is_never_taken_over_even_with_a_clock_far_behind():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    for i in range(20):  # the holder's clock is an hour behind, but it renews every 3 s
        assert not observer.free(holder_lease("other", NOW - timedelta(hours=1) + timedelta(seconds=3 * i)))
        clock.t += 3


def test_a_new_holder_restarts_the_count():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    assert not observer.free(holder_lease("a", NOW))
    clock.t += 14
    assert not observer.free(holder_lease("b", NOW, transitions=1))  # another holder took it meanwhile
    clock.t += 14
    assert not observer.free(holder_lease("b", NOW, transitions=1))
    clock.t += 2
    assert observer.free(holder_lease("b", NOW, transitions=1))


def test_two_standbys_racing_for_a_free_lease_make_exactly_one_holder():
    leases = FakeLeases()

    async def race() -> list[bool]:
        a, b = (Leader(leases, "ns", "l", name) for name in ("a", "b"))  # type: ignore[arg-type]
        first = await a._try()
        second = await b._try()  # the Lease exists now and is held by a
        return [first, second]

    assert asyncio.run(race()) == [True, False]
    assert leases.leases["l"].spec.holder_identity == "a"

    stale = leases.read_namespaced_lease("l", "ns", _request_timeout=1)
    leases.replace_namespaced_lease("l", "ns", copy.deepcopy(stale), _request_timeout=1)  # a renews
    with pytest.raises(ApiException) as conflict:  # a standby writing over the version it read is refused
        leases.replace_namespaced_lease("l", "ns", stale, _request_timeout=1)
    assert conflict.value.status == 409


def test_a_standby_takes_a_dead_holders_lease_one_duration_after_it_last_changed():
    leases, clock = FakeLeases(), Clock()

    async def scenario() -> None:
        dead = Leader(leases, "ns", "l", "dead", clock=clock)  # type: ignore[arg-type]
        assert await dead._try()
        standby = Leader(leases, "ns", "l", "standby", clock=clock)  # type: ignore[arg-type]
        assert not await standby._try()
        clock.t += 10
        assert not await standby._try()
        clock.t += 5.5
        assert await standby._try()

    asyncio.run(scenario())
    spec = leases.leases["l"].spec
    assert (spec.holder_identity, spec.lease_transitions) == ("standby", 1)


def test_a_holder_whose_renewal_hangs_stops_within_the_renew_deadline():
    leases = FakeLeases()

    async def scenario() -> float:
        leader = Leader(leases, "ns", "l", "me", duration_s=0.6, renew_s=0.1, retry_s=0.05)  # type: ignore[arg-type]
        await leader.acquire()
        assert leader.leading
        leases.hang.set()  # the apiserver stops answering renewals
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(leader.hold(), timeout=5)
        assert not leader.leading
        return loop.time() - start

    try:
        took = asyncio.run(scenario())
    finally:
        leases.release.set()
    assert took < 0.6  # the deadline is duration_s - renew_s = 0.5 s after the last renewal started


def test_a_holder_that_renews_stays_leader():
    leases = FakeLeases()

    async def scenario() -> int:
        leader = Leader(leases, "ns", "l", "me", duration_s=0.6, renew_s=0.05)  # type: ignore[arg-type]
        await leader.acquire()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(leader.hold(), timeout=0.5)
        return leases.writes

    assert asyncio.run(scenario()) >= 5  # created, then renewed about every 50 ms


def test_renewing_at_least_once_per_duration_is_required():
    with pytest.raises(ValueError, match="renew_s"):
        Leader(FakeLeases(), "ns", "l", "me", duration_s=3, renew_s=3)  # type: ignore[arg-type]
