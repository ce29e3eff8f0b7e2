"""heatsched.watch against a scripted apiserver over real HTTP: order, paging, 410 Gone, bookmarks, batching."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from heatsched import watch as watch_mod
from heatsched.kubeapi import Credentials, KubeApi
from heatsched.watch import Watch


def listed(names: list[str], version: str, cont: str = "") -> tuple[str, bytes]:
    meta = {"resourceVersion": version, **({"continue": cont} if cont else {})}
    return "list", orjson.dumps({"metadata": meta, "items": [{"metadata": {"name": n}} for n in names]})


def stream(events: list[dict]) -> tuple[str, bytes]:
    return "watch", b"".join(orjson.dumps(e) + b"\n" for e in events)


def event(kind: str, name: str, version: str) -> dict:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


class Apiserver:
    """Answers each GET on /things with the next step: a list page, a watch stream (sent in 7-byte chunks, lines
    split as on the wire), or an error status; then 500 for ever."""

    def __init__(self, steps: list) -> None:
        self.steps, self.calls = list(steps), []
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(dict(request.query))
        if not self.steps:
            self.done.set()
            return web.json_response({"reason": "InternalError", "message": "script over"}, status=500)
        step = self.steps.pop(0)
        if isinstance(step, int):
            return web.json_response({"reason": "Gone", "message": "too old"}, status=step)
        kind, body = step
        if kind == "list":
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(0, len(body), 7):
            await resp.write(body[i:i + 7])
        await resp.write_eof()
        return resp


async def run(steps: list, apply, *, batch: int = 2, monkeypatch, **kwargs) -> tuple[Apiserver, Watch]:
    monkeypatch.setattr(watch_mod, "MAX_BATCH", batch)
    server = Apiserver(steps)
    app = web.Application()
    app.router.add_get("/things", server.handle)
    async with TestServer(app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")), True))
        w = Watch("things", api, "/things", lambda o: (o["metadata"]["name"], o["metadata"].get("resourceVersion")),
                  apply, **kwargs).start()
        await asyncio.wait_for(server.done.wait(), 10)
        w.stop()
        await api.close()
    return server, w


async def test_events_are_applied_in_order_and_a_410_relists(monkeypatch):
    applied: list = []
    server, w = await run([
        listed(["a", "b"], "10"),
        stream([event("ADDED", "c", "11"), event("MODIFIED", "a", "12"), {"type": "BOOKMARK", "object": {
            "metadata": {"resourceVersion": "13"}}}, event("DELETED", "b", "14")]),
        410,
        listed(["a", "d"], "20"),  # c vanished while we were away
    ], lambda k, v: applied.append((k, v)), monkeypatch=monkeypatch, field_selector="spec.nodeName!=")
    assert applied == [("a", None), ("b", None), ("c", "11"), ("a", "12"), ("b", None),
                       ("c", None), ("a", None), ("d", None)]
    assert w.synced and w.relists == 2 and w.last_event > 0
    first_watch, resumed = server.calls[1], server.calls[2]
    assert first_watch["resourceVersion"] == "10" and first_watch["allowWatchBookmarks"] == "true"
    assert first_watch["watch"] == "true" and int(first_watch["timeoutSeconds"]) > 0
    assert resumed["resourceVersion"] == "14"  # resumed after the last event, bookmark included
    assert all(c["fieldSelector"] == "spec.nodeName!=" for c in server.calls)


async def test_a_list_is_read_page_by_page_and_applied_once_complete(monkeypatch):
    applied: list = []
    server, w = await run([listed(["a", "b"], "5", cont="page2"), listed(["c"], "5")],
                          lambda k, v: applied.append(k), monkeypatch=monkeypatch, page_size=2)
    assert applied == ["a", "b", "c"] and w.synced
    assert server.calls[0]["limit"] == "2" and "continue" not in server.calls[0]
    assert server.calls[1]["continue"] == "page2"
    assert server.calls[2]["resourceVersion"] == "5"  # the watch starts at the list's version


async def test_a_watch_error_event_410_relists(monkeypatch):
    applied: list = []
    server, _ = await run([listed(["a"], "1"), stream([{"type": "ERROR", "object": {"code": 410}}]), listed([], "9")],
                          lambda k, v: applied.append((k, v)), monkeypatch=monkeypatch)
    assert applied == [("a", None), ("a", None)]  # listed, then gone in the second list
    assert "resourceVersion" not in server.calls[2]


async def test_a_failing_apply_loses_one_event_not_the_watch(monkeypatch):
    applied: list = []

    def apply(key, value):
        if key == "x":
            raise RuntimeError("bad object")
        applied.append(key)

    await run([listed([], "1"), stream([event("ADDED", n, str(i)) for i, n in enumerate("xyz")])], apply,
              monkeypatch=monkeypatch)
    assert applied == ["y", "z"]


async def test_a_burst_lets_other_tasks_run_every_max_batch_events(monkeypatch):
    applied: list = []
    seen: list[int] = []
    stop = asyncio.Event()

    async def other_task() -> None:  # what an extender request is to the loop
        while not stop.is_set():
            seen.append(len(applied))
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    await run([listed([], "1"), stream([event("ADDED", f"p{i}", str(i)) for i in range(40)])],
              lambda k, v: applied.append(k), batch=4, monkeypatch=monkeypatch)
    stop.set()
    await ticker
    assert len(applied) == 40
    during = sorted(set(seen))
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert gaps and max(gaps) <= 4  # never more than MAX_BATCH events between two turns of the other task


@pytest.mark.parametrize("status", [403, 500])
async def test_an_error_backs_off_and_retries(monkeypatch, status):
    monkeypatch.setattr(asyncio, "sleep", _fast_sleep(asyncio.sleep))
    applied: list = []
    server, w = await run([status, listed(["a"], "3")], lambda k, v: applied.append(k), monkeypatch=monkeypatch)
    assert applied == ["a"] and w.synced and len(server.calls) >= 3


def _fast_sleep(real):
    async def sleep(delay: float, result=None):
        return await real(0 if delay >= 0.5 else delay, result)
    return sleep
