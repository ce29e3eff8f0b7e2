"""Blocking calls of the controller, run off its event loop in a bounded pool of their own.

Why: the Prometheus client (prometheus_api_client, on requests) blocks. Run on the loop, one slow query would
stall every kopf handler and the pod watch; run in asyncio's default executor, a burst of slow queries could
starve whatever else uses it. IO_THREADS threads bound how many run at once; each query has its own timeout
(telemetry/prometheus.py). Kubernetes calls need none of this: heatsched.kubeapi is async.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

IO_THREADS = 8
_POOL = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="heatsched-io")


async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in the controller's I/O pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))
