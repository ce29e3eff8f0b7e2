"""List+watch of one resource: resume from resourceVersion, re-list on 410 Gone, bookmarks on, a timeout on every
request. The placement service keeps its whole view this way, and the controller its pods.

Why threads and raw JSON: the kubernetes client is blocking; one thread per resource reads its stream, decodes
each line with orjson and reduces the object to the few fields the reader needs (`extract`), so the event loop
only applies small values and an extender call never waits behind a decode. The thread queues what it read
(events, lists, bookmarks, in order) and wakes the loop once per batch, not once per event; the loop applies at
most MAX_BATCH items per turn, so a burst of pod events delays a request by one batch at most. Why not
kopf for these: kopf deep-copies every body to diff it and keeps per-object state, which pods (the most numerous,
most often changed objects) do not need: they are only read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("heatsched.watch")

Extract = Callable[[dict[str, Any]], tuple[str, Any]]  # object -> (key, what the view keeps)
Apply = Callable[[str, Any | None], None]  # (key, kept) ; None: deleted
LIST_TIMEOUT_S = 60.0
WATCH_TIMEOUT_S = 300  # server-side; the client waits 30 s more
CONNECT_TIMEOUT_S = 10.0
MAX_BATCH = 64  # queued items the loop applies per turn before it serves I/O again
_EVENT, _LIST, _BOOKMARK = 0, 1, 2


class Watch:
    """Feed `apply` on `loop` with every object of `list_fn` (a kubernetes-client list method)."""

    def __init__(self, what: str, list_fn: Callable[..., Any], extract: Extract, apply: Apply,
                 loop: asyncio.AbstractEventLoop, *, on_synced: Callable[[], None] | None = None,
                 field_selector: str | None = None) -> None:
        self.what, self.list_fn, self.extract, self.apply, self.loop = what, list_fn, extract, apply, loop
        self.on_synced, self.field_selector = on_synced, field_selector
        self.synced = False
        self.last_event = 0.0  # monotonic time of the last list, event or bookmark (cache staleness)
        self.relists = 0
        self._keys: set[str] = set()
        self._queue: deque[tuple[int, Any, Any]] = deque()  # filled by the thread, drained on the loop
        self._lock = threading.Lock()
        self._wake_pending = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{what}", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _kwargs(self) -> dict[str, Any]:
        return {"field_selector": self.field_selector} if self.field_selector else {}

    def _list(self) -> str:
        resp = self.list_fn(_preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, LIST_TIMEOUT_S),
                            **self._kwargs())
        body = orjson.loads(resp.data)
        kept = dict(self.extract(item) for item in body.get("items") or ())
        gone = self._keys - kept.keys()
        self._keys = set(kept)
        self._post(_LIST, kept, gone)
        self.relists += 1
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _post(self, kind: int, a: Any, b: Any) -> None:
        """Watch thread: queue an item; wake the loop only if no drain is already pending."""
        with self._lock:
            self._queue.append((kind, a, b))
            if self._wake_pending:
                return
            self._wake_pending = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """Loop: apply up to MAX_BATCH queued items in order, then yield to I/O if more are left."""
        with self._lock:
            n = min(len(self._queue), MAX_BATCH)
            batch = [self._queue.popleft() for _ in range(n)]
            more = bool(self._queue)
            if not more:
                self._wake_pending = False
        for kind, a, b in batch:
            try:
                if kind == _EVENT:
                    self.apply(a, b)
                elif kind == _LIST:
                    self._deliver_list(a, b)
            except Exception:  # one bad object must not stop the view: log it and go on with the next
                log.exception("watch %s: applying an event failed", self.what)
        if batch:
            self.last_event = time.monotonic()
        if more:
            self.loop.call_soon(self._drain)

    def _deliver_list(self, kept: dict[str, Any], gone: set[str]) -> None:
        for key in gone:
            self.apply(key, None)
        for key, value in kept.items():
            self.apply(key, value)
        if not self.synced:
            self.synced = True
            if self.on_synced is not None:
                self.on_synced()

    def _run(self) -> None:
        version = ""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = ""  # too old: list again
                    continue
                log.warning("watch %s: %s %s; retrying in %.1f s", self.what, exc.status, exc.reason, backoff)
            except Exception as exc:  # noqa: BLE001 - connection errors and timeouts: back off and go on
                log.warning("watch %s: %s: %s; retrying in %.1f s", self.what, type(exc).__name__, exc, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _watch(self, version: str) -> str:
        resp = self.list_fn(watch=True, resource_version=version, allow_watch_bookmarks=True,
                            timeout_seconds=WATCH_TIMEOUT_S, _preload_content=False,
                            _request_timeout=(CONNECT_TIMEOUT_S, WATCH_TIMEOUT_S + 30), **self._kwargs())
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    break
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return ""
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    self._post(_BOOKMARK, None, None)
                    continue
                key, value = self.extract(obj)
                if kind == "DELETED":
                    self._keys.discard(key)
                    self._post(_EVENT, key, None)
                else:
                    self._keys.add(key)
                    self._post(_EVENT, key, value)
        finally:
            resp.release_conn()
        return version
