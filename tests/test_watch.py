"""heatsched.watch against a scripted list/watch function: order, batching, 410 Gone and bookmarks."""

from __future__ import annotations

import asyncio
import threading

import orjson
from heatsched import watch as watch_mod
from heatsched.watch import Watch
from kubernetes.client.exceptions import ApiException


class Stream:
    def __init__(self, events: list[dict]) -> None:
        self.lines = b"".join(orjson.dumps(e) + b"\n" for e in events)

    def stream(self, amt=None, decode_content=False):
        for i in range(0, len(self.lines), 7):  # lines split across chunks, as on the wire
            yield self.lines[i:i + 7]

    def release_conn(self) -> None:
        pass


class Listed:
    def __init__(self, names: list[str], version: str) -> None:
        self.data = orjson.dumps({"metadata": {"resourceVersion": version},
                                  "items": [{"metadata": {"name": n}} for n in names]})


def event(kind: str, name: str, version: str) -> dict:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


class Script:
    """list_fn: answers lists and watches from a script, then blocks until stopped."""

    def __init__(self, steps: list) -> None:
        self.steps, self.calls = list(steps), []
        self.done = threading.Event()

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if not self.steps:
            self.done.set()
            raise ApiException(status=500, reason="script over")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


async def run(script: Script, monkeypatch, batch: int = 2) -> tuple[list, Watch]:
    monkeypatch.setattr(watch_mod, "MAX_BATCH", batch)
    applied: list = []
    loop = asyncio.get_running_loop()
    w = Watch("things", script, lambda o: (o["metadata"]["name"], o["metadata"].get("resourceVersion")),
              lambda k, v: applied.append((k, v)), loop)
    w.start()
    await loop.run_in_executor(None, script.done.wait, 10)
    w.stop()
    for _ in range(50):  # let the queued batches drain
        await asyncio.sleep(0.01)
    return applied, w


async def test_events_are_applied_in_order_and_a_410_relists(monkeypatch):
    script = Script([
        Listed(["a", "b"], "10"),
        Stream([event("ADDED", "c", "11"), event("MODIFIED", "a", "12"), {"type": "BOOKMARK", "object": {
            "metadata": {"resourceVersion": "13"}}}, event("DELETED", "b", "14")]),
        ApiException(status=410, reason="Gone"),
        Listed(["a", "d"], "20"),  # c vanished while we were away
    ])
    applied, w = await run(script, monkeypatch)
    assert applied == [("a", None), ("b", None), ("c", "11"), ("a", "12"), ("b", None),
                       ("c", None), ("a", None), ("d", None)]
    assert w.synced and w.relists == 2 and w.last_event > 0
    assert script.calls[1]["resource_version"] == "10" and script.calls[1]["allow_watch_bookmarks"]
    assert script.calls[2]["resource_version"] == "14"  # resumed after the last event, bookmark included
    assert all("_request_timeout" in c for c in script.calls)


async def test_a_failing_apply_loses_one_event_not_the_watch(monkeypatch):
    script = Script([Listed([], "1"), Stream([event("ADDED", n, str(i)) for i, n in enumerate("xyz")])])
    monkeypatch.setattr(watch_mod, "MAX_BATCH", 2)
    applied: list = []

    def apply(key, value):
        if key == "x":
            raise RuntimeError("bad object")
        applied.append(key)

    loop = asyncio.get_running_loop()
    w = Watch("things", script, lambda o: (o["metadata"]["name"], 1), apply, loop)
    w.start()
    await loop.run_in_executor(None, script.done.wait, 10)
    w.stop()
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert applied == ["y", "z"]



async def test_a_burst_is_applied_at_most_max_batch_items_per_loop_turn(monkeypatch):
    monkeypatch.setattr(watch_mod, "MAX_BATCH", 2)
    applied: list = []
    loop = asyncio.get_running_loop()
    w = Watch("things", Script([]), lambda o: (o, o), lambda k, v: applied.append(k), loop)
    for key in "abcde":  # what the watch thread queues during a burst (never started here)
        w._post(watch_mod._EVENT, key, key)
    turns = []
    while len(applied) < 5 and len(turns) < 10:
        await asyncio.sleep(0)  # one loop turn: I/O (an extender request) would be served in between
        turns.append(len(applied))
    assert turns[:3] == [2, 4, 5]  # in order, two per turn
    assert applied == list("abcde")
