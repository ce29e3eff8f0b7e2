"""List+watch of one resource on the event loop: paged lists, resume from resourceVersion, re-list on 410 Gone,
bookmarks on, a timeout on every request. The placement service keeps its whole view this way, and the
controller its pods.

Why on the loop, with no thread: the watch reads through the async KubeApi, decodes each event with orjson
(tens of microseconds for a pod) and reduces the object to the few fields the reader needs (`extract`), then
applies it. A thread would not run that work in parallel anyway (it holds the GIL the event loop needs), and
handing each event over costs wake-ups. So that a burst cannot hold the loop, the watch yields to other tasks
(an extender call) after every MAX_BATCH events, and lists come in pages of `page_size` objects, each decoded in
a few milliseconds, rather than one body of every pod. Why not kopf for these: kopf deep-copies every body to
diff it and keeps per-object state, which pods (the most numerous, most often changed objects) do not need: they
are only read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from heatsched.kubeapi import ApiError, KubeApi

log = logging.getLogger("heatsched.watch")

Extract = Callable[[dict[str, Any]], tuple[str, Any]]  # object -> (key, what the view keeps)
Apply = Callable[[str, Any | None], None]  # (key, kept) ; None: deleted
LIST_TIMEOUT_S = 60.0  # per page
WATCH_TIMEOUT_S = 300  # server-side; the client gives up after 30 s more of silence
PAGE_SIZE = 500
MAX_BATCH = 4  # events applied before other tasks run (docs/benchmarks.md: 4 beat 1 and a 0.5 ms bound on throughput)


class Watch:
    """Feed `apply` with every object at `url` (a collection path, e.g. /api/v1/pods), on the running loop."""

    def __init__(self, what: str, api: KubeApi, url: str, extract: Extract, apply: Apply, *,
                 on_synced: Callable[[], None] | None = None, field_selector: str | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        self.what, self.api, self.url, self.extract, self.apply = what, api, url, extract, apply
        self.on_synced, self.field_selector, self.page_size = on_synced, field_selector, page_size
        self.synced = False
        self.last_event = 0.0  # monotonic time of the last list, event or bookmark (cache staleness)
        self.relists = 0
        self._keys: set[str] = set()
        self._since_yield = 0  # items applied since the watch last let other tasks run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Watch:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch-{self.what}")
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _params(self, **more: str) -> dict[str, str]:
        return {**({"fieldSelector": self.field_selector} if self.field_selector else {}), **more}

    async def _run(self) -> None:
        version = ""
        backoff = 0.5
        while True:
            try:
                if not version:
                    version = await self._list()
                version = await self._watch(version)
                backoff = 0.5
                continue
            except ApiError as exc:
                if exc.status == 410:
                    version = ""  # too old: list again
                    continue
                log.warning("watch %s: %s %s; retrying in %.1f s", self.what, exc.status, exc.reason, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - connection errors and timeouts: back off and go on
                log.warning("watch %s: %s: %s; retrying in %.1f s", self.what, type(exc).__name__, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _list(self) -> str:
        kept: dict[str, Any] = {}
        params = self._params(limit=str(self.page_size))
        while True:
            body = await self.api.get(self.url, params=params, timeout_s=LIST_TIMEOUT_S)
            for item in body.get("items") or ():
                key, value = self.extract(item)
                kept[key] = value
            meta = body.get("metadata") or {}
            if not meta.get("continue"):
                break
            params = {**params, "continue": str(meta["continue"])}
            await asyncio.sleep(0)  # a page at a time: requests are served in between
        gone = self._keys - kept.keys()
        self._keys = set(kept)
        for key in gone:
            await self._apply(key, None)
        for key, value in kept.items():
            await self._apply(key, value)
        self.relists += 1
        self.last_event = time.monotonic()
        if not self.synced:
            self.synced = True
            if self.on_synced is not None:
                self.on_synced()
        return str(meta.get("resourceVersion") or "")

    async def _apply(self, key: str, value: Any) -> None:
        """Apply one item (a bad object is logged and skipped, never stops the view); every MAX_BATCH items, let
        other tasks run."""
        try:
            self.apply(key, value)
        except Exception:
            log.exception("watch %s: applying an event failed", self.what)
        self._since_yield += 1
        if self._since_yield >= MAX_BATCH:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def _watch(self, version: str) -> str:
        params = self._params(watch="true", resourceVersion=version, allowWatchBookmarks="true",
                              timeoutSeconds=str(WATCH_TIMEOUT_S))
        async for line in self.api.stream(self.url, params, read_timeout_s=WATCH_TIMEOUT_S + 30):
            event = orjson.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return ""
                raise RuntimeError(f"watch error: {obj.get('message')}")
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            self.last_event = time.monotonic()
            if kind == "BOOKMARK":
                continue
            key, value = self.extract(obj)
            if kind == "DELETED":
                self._keys.discard(key)
                await self._apply(key, None)
            else:
                self._keys.add(key)
                await self._apply(key, value)
        return version
