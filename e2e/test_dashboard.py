"""Every panel of the Grafana dashboard (charts/heatsched/files/dashboard.json) returns data from a real
Prometheus scraping the processes' own /metrics and the twin-like exporter, after some heat-aware scheduling."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from stack import wait_for

DASHBOARD = Path(__file__).resolve().parent.parent / "charts" / "heatsched" / "files" / "dashboard.json"
FR = {"heatsched.io/residency": "FR"}


def query(stack, expr: str) -> list:
    url = f"{stack.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_dashboard_panel_returns_data(stack, heat_namespace):
    for site in ("montlucon-residence", "metz-hospital", "sarreguemines-factory", "frankfurt-office"):
        stack.exporter.lines[f"{site}#backup"] = f'heatsched_twin_backup_kw{{site="{site}"}} 2.5'  # a meter's series
    for i in range(6):
        stack.pod(heat_namespace, f"dash-{i}", annotations=FR)
    wait_for(lambda: all(p.spec.node_name for p in stack.core.list_namespaced_pod(heat_namespace).items), 60,
             what="pods bound")
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = {(p["title"], t["refId"]): t["expr"].replace("$site", ".*").replace("$__rate_interval", "1m")
             for p in panels for t in p["targets"]}

    missing = list(exprs)
    deadline = time.monotonic() + 60
    while missing and time.monotonic() < deadline:  # a scrape or two after the pods bound
        missing = [k for k in missing if not query(stack, exprs[k])]
        time.sleep(2)
    assert missing == [], {k: exprs[k] for k in missing}
