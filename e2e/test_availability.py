"""Availability of the two processes (docs/operator.md#failover, docs/placement.md):

- the controller SIGKILLed while it works: the standby holds the Lease and writes status within 30 s, and a
  standby writes nothing before that;
- a placement replica SIGKILLed during a burst of 300 French pods, two replicas behind a round-robin proxy (the
  local stand-in for the Service): 0 refused, 0 placed outside France.
"""

from __future__ import annotations

import time
import urllib.request

from heatsched.cluster.procs import Service, free_port
from kubernetes import client
from lb import RoundRobin
from stack import MAX_HEAT_WAIT_S, metric, wait_for

FR = {"heatsched.io/residency": "FR"}
FRANKFURT = "frankfurt-office"
FRENCH_SITES = ("metz-hospital", "montlucon-residence", "sarreguemines-factory")


def scrape(service: Service) -> str:
    """/metrics of a controller process; "" while it is not listening yet."""
    service.check()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def test_a_standby_controller_takes_over_within_30_s_and_wrote_nothing_before(stack):
    standby = stack.start_controller(name="standby")
    try:
        wait_for(lambda: metric(scrape(standby), "heatsched_controller_leader") == 0.0, 30, what="standby up")
        time.sleep(5)  # the active one writes status every 3 s meanwhile
        assert metric(scrape(standby), "heatsched_status_writes_total") == 0.0
        before = stack.site_status("metz-hospital").get("readingTime")
        stack.stop_controller(kill=True)  # SIGKILL, whatever it was doing
        killed = time.monotonic()
        stack.heatsched.wait_leading(standby, 40)
        wait_for(lambda: (metric(scrape(standby), "heatsched_status_writes_total") or 0) > 0, 40,
                 what="standby writes status")
        took = time.monotonic() - killed
        print(f"failover: the standby wrote status {took:.1f} s after the active controller was killed")
        assert took <= 30, f"failover took {took:.1f} s"
        wait_for(lambda: stack.site_status("metz-hospital").get("readingTime") != before, 30,
                 what="status moving again")
    finally:
        standby.stop()
        stack.stop_controller()
        stack.start_controller()


def served(extender_port: int) -> dict[str, float]:
    """Pods the replica admitted and filter calls it answered so far (its own /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{extender_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {"admitted": metric(text, "heatsched_admission_requests_total", webhook="pods", result="allowed") or 0.0,
            "filtered": metric(text, "heatsched_extender_request_duration_seconds_count", verb="filter") or 0.0}


def _placement(stack, extender: int, webhook: int) -> Service:
    return stack.heatsched.placement(extender, webhook_port=webhook, cert_dir=stack.workdir / "webhook-tls",
                                     name=f"placement-{extender}", args=[
                                         f"--max-heat-wait={MAX_HEAT_WAIT_S}",
                                         f"--webhook-url=https://127.0.0.1:{stack.webhook_port}"])


def test_killing_a_placement_replica_during_a_burst_refuses_and_misplaces_nothing(stack, heat_namespace):
    stack.set_temperatures({FRANKFURT: 30.0, "montlucon-residence": 56.0, "metz-hospital": 56.0,
                            "sarreguemines-factory": 56.0})
    stack.stop_placement()
    ports = [(free_port(), free_port()) for _ in range(2)]
    replicas = [_placement(stack, e, w) for e, w in ports]
    proxies = [RoundRobin(stack.extender_port(), [e for e, _ in ports]).start(),
               RoundRobin(stack.webhook_port, [w for _, w in ports]).start()]
    try:
        for r in replicas:
            stack.heatsched.wait_ready(r)
        # every third pod has a preset French node: kube-apiserver asks the webhook (through its proxy) about it;
        # the others go through the heat-aware scheduler and the extender proxy
        french = sorted(n.metadata.name for n in stack.core.list_node().items
                        if stack.node_site(n.metadata.name) in FRENCH_SITES)
        names = [f"burst-{i:03d}" for i in range(300)]
        refused = []
        for i, name in enumerate(names):
            if i == 100:
                replicas[0].stop(grace=0)  # SIGKILL one replica mid-burst
                before = served(ports[1][0])
            try:
                stack.pod(heat_namespace, name, cpu="10m", annotations=FR,
                          node=french[i % len(french)] if i % 3 == 0 else None)
            except client.ApiException as exc:
                refused.append((name, exc.status))
        assert refused == []

        def placed():
            pods = stack.core.list_namespaced_pod(heat_namespace).items
            bound = {p.metadata.name: p.spec.node_name for p in pods if p.spec.node_name}
            return bound if len(bound) == len(names) else None
        bound = wait_for(placed, 240, interval=1, what="all 300 pods bound")
        misplaced = {n: node for n, node in bound.items() if stack.node_site(node) == FRANKFURT}
        assert misplaced == {}
        assert proxies[0].connections[ports[1][0]] > 0  # the survivor answered the extender calls
        after = served(ports[1][0])
        assert after["admitted"] > before["admitted"], "no pod admission reached the survivor after the kill"
        assert after["filtered"] > before["filtered"], "no extender call reached the survivor after the kill"
    finally:
        for p in proxies:
            p.stop()
        for r in replicas:
            r.stop()
        stack.start_placement()
