"""The controller's Lease election (controller/leader.py): one holder, expiry timed by the standby's own clock,
and a holder that stops before anyone else may take over. The Lease API is a fake KubeApi with the
apiserver's optimistic concurrency (resourceVersion, 409 on a stale write, 404 on a missing Lease)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from heatsched.controller.leader import Leader, LeaseObserver
from heatsched.kubeapi import ApiError

URL = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"


class FakeLeases:
    """The KubeApi calls Leader makes, on one namespace's Leases, checked like the apiserver checks them."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.hang: asyncio.Event | None = None  # set: PUTs wait on it (an apiserver that stopped answering)
        self.writes = 0

    async def get_or_none(self, url: str) -> dict[str, Any] | None:
        found = copy.deepcopy(self.leases.get(url))
        await asyncio.sleep(0)  # let a concurrent caller read the same version
        return found

    async def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        name = f"{url}/{body['metadata']['name']}"
        if name in self.leases:
            raise ApiError(409, "AlreadyExists")
        return self._store(name, body)

    async def put(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.hang is not None:
            await self.hang.wait()
        if body["metadata"].get("resourceVersion") != self.leases[url]["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict")
        return self._store(url, body)

    def _store(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[url] = body
        return body


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def holder_lease(holder: str | None, renewed: str, transitions: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": "l", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "renewTime": renewed, "acquireTime": renewed,
                     "leaseDurationSeconds": 15, "leaseTransitions": transitions}}


def at(seconds: int) -> str:
    """A MicroTime `seconds` after 08:00:00 on a fixed day."""
    return f"2026-12-02T08:{seconds // 60:02d}:{seconds % 60:02d}.000000Z"


def test_a_lease_is_free_when_unheld_or_ours():
    observer = LeaseObserver("me", Clock())
    assert observer.free(holder_lease(None, at(0)))
    assert observer.free(holder_lease("me", at(0)))
    assert observer.free({"metadata": {"name": "l"}})


def test_a_held_lease_is_free_only_after_its_record_stayed_unchanged_for_the_duration_on_our_clock():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    old = holder_lease("other", "2026-12-02T05:00:00.000000Z")  # hours ago: skew, or a dead holder
    assert not observer.free(old)  # first sight: the count starts now, whatever renewTime says
    clock.t += 14.9
    assert not observer.free(old)
    clock.t += 0.2
    assert observer.free(old)


def test_a_holder_that_keeps_renewing_is_never_taken_over_even_with_a_clock_far_behind():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    for i in range(20):  # the holder's clock is an hour behind, but it renews every 3 s
        assert not observer.free(holder_lease("other", at(3 * i)))  # its clock says 08:00, ours any time
        clock.t += 3


def test_a_new_holder_restarts_the_count():
    clock = Clock()
    observer = LeaseObserver("me", clock)
    assert not observer.free(holder_lease("a", at(0)))
    clock.t += 14
    assert not observer.free(holder_lease("b", at(0), transitions=1))  # another holder took it meanwhile
    clock.t += 14
    assert not observer.free(holder_lease("b", at(0), transitions=1))
    clock.t += 2
    assert observer.free(holder_lease("b", at(0), transitions=1))


def test_two_standbys_creating_the_lease_at_once_make_exactly_one_holder():
    leases = FakeLeases()

    async def race() -> list[bool]:
        a, b = (Leader(leases, "ns", "l", name) for name in ("a", "b"))  # type: ignore[arg-type]
        return list(await asyncio.gather(a._try(), b._try()))  # both read "no Lease", both create it

    assert sorted(asyncio.run(race())) == [False, True]
    assert leases.writes == 1


def test_a_standby_whose_write_lost_the_race_is_not_the_holder():
    leases = FakeLeases()
    leases.leases[URL], leases.version = holder_lease(None, at(0)), 1  # free, at version 1

    async def scenario() -> bool:
        a, b = (Leader(leases, "ns", "l", name) for name in ("a", "b"))  # type: ignore[arg-type]
        real_put = leases.put

        async def b_writes_first(url: str, body: dict[str, Any]) -> dict[str, Any]:
            leases.put = real_put  # type: ignore[method-assign]
            assert await b._try()  # b reads version 1 and writes version 2 ...
            return await real_put(url, body)  # ... before a's write of version 1 lands

        leases.put = b_writes_first  # type: ignore[method-assign]
        return await a._try()

    assert asyncio.run(scenario()) is False
    assert leases.leases[URL]["spec"]["holderIdentity"] == "b"


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
    spec = leases.leases[URL]["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("standby", 1)


def test_a_holder_whose_renewal_hangs_stops_within_the_renew_deadline():
    leases = FakeLeases()

    async def scenario() -> float:
        leader = Leader(leases, "ns", "l", "me", duration_s=0.6, renew_s=0.1, retry_s=0.05)  # type: ignore[arg-type]
        await leader.acquire()
        assert leader.leading
        leases.hang = asyncio.Event()  # the apiserver stops answering renewals
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(leader.hold(), timeout=5)
        assert not leader.leading
        return loop.time() - start

    assert asyncio.run(scenario()) < 0.6  # the deadline is duration_s - renew_s = 0.5 s after the last renewal


def test_a_clean_stop_releases_the_lease_for_a_standby_to_take_at_once():
    leases = FakeLeases()

    async def scenario() -> bool:
        holder = Leader(leases, "ns", "l", "holder")  # type: ignore[arg-type]
        await holder.acquire()
        await holder.release()
        standby = Leader(leases, "ns", "l", "standby", clock=Clock())  # type: ignore[arg-type]
        return await standby._try()

    assert asyncio.run(scenario())
    assert leases.leases[URL]["spec"]["holderIdentity"] == "standby"


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
