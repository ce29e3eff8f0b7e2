"""Heat fuel end to end: the operator runs preemptible fuel pods on a cold site's idle cores and removes them
when the tank is hot, tenant pods preempt them, the guard keeps them off where the grid is dirtier than gas,
and they never run outside their site.

Sites (2 kwok nodes × 4 CPU each; fuel pods of 4 cores): montlucon-residence, metz-hospital,
sarreguemines-factory (FR, grid 0.052 kgCO2e/kWh) and frankfurt-office (DE, 0.38: the guard refuses).
"""

from __future__ import annotations

import pytest
from heatsched.placement.model import FUEL_SITE_LABEL, SITE_LABEL
from stack import FUEL_NAMESPACE, wait_for

MONTLUCON, METZ, SARREGUEMINES, FRANKFURT = (
    "montlucon-residence", "metz-hospital", "sarreguemines-factory", "frankfurt-office")
FR_SITES = (MONTLUCON, METZ, SARREGUEMINES)


@pytest.fixture
def fuel_off_afterwards(stack):
    yield
    for site in (*FR_SITES, FRANKFURT):
        stack.set_fuel(site, False)
    stack.set_temperatures({s: 60.0 for s in (*FR_SITES, FRANKFURT)}, wait_state=False)
    wait_for(lambda: not stack.fuel_pods(), 60, what="every fuel pod gone")


def bound_fuel(stack, site: str) -> list:
    return [p for p in stack.fuel_pods(site) if p.spec.node_name]


def assert_inside_its_site(stack, pods) -> None:
    for p in pods:
        site = p.metadata.labels[FUEL_SITE_LABEL]
        assert stack.node_labels(p.spec.node_name)[SITE_LABEL] == site, (p.metadata.name, p.spec.node_name)
        term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert [(e.key, e.operator, e.values) for e in term[0].match_expressions] == [(SITE_LABEL, "In", [site])]
        assert p.spec.priority_class_name == "heatsched-fuel" and p.spec.priority < 0


def site_events(stack, site: str) -> list[str]:
    events = stack.core.list_namespaced_event("default", field_selector=f"involvedObject.name={site}").items
    return [e.reason for e in events]


def test_fuel_starts_on_a_cold_site_and_leaves_when_the_tank_is_hot(stack, fuel_off_afterwards):
    stack.set_temperatures({MONTLUCON: 50.0})
    stack.set_fuel(MONTLUCON, True)
    pods = wait_for(lambda: len(bound_fuel(stack, MONTLUCON)) == 2 and bound_fuel(stack, MONTLUCON), 60,
                    what="two fuel pods bound at Montluçon (8 idle cores)")
    assert_inside_its_site(stack, pods)
    fuel = wait_for(lambda: (stack.site_status(MONTLUCON).get("fuel") or {}).get("cores") == 8
                    and stack.site_status(MONTLUCON)["fuel"], 30, what="status.fuel counts 8 cores")
    assert fuel["allowed"] is True and fuel["kW"] == pytest.approx(8 * 12 / 1000) and fuel["plannedCores"] == 8
    assert "kW of heat short" in fuel["reason"] and "0.055 < backup heat 0.252" in fuel["guard"]
    wait_for(lambda: "FuelStarted" in site_events(stack, MONTLUCON), 30, what="a FuelStarted event")
    row = stack.kubectl("get", "heatsite", MONTLUCON, "--no-headers").stdout.split()
    header = stack.kubectl("get", "heatsites").stdout.splitlines()[0].split()
    assert header.index("FUEL") and row[header.index("FUEL")] == "0.096", (header, row)
    wait_for(lambda: (stack.site_status(MONTLUCON).get("fuel") or {}).get("electricityKWh", 0) > 0, 30,
             what="fuel electricity counted")

    stack.set_temperatures({MONTLUCON: 64.0})  # within 3 K of the 65 °C the cooling loop can reach
    wait_for(lambda: not stack.fuel_pods(MONTLUCON), 60, what="fuel pods gone from the hot site")
    status = wait_for(lambda: (stack.site_status(MONTLUCON).get("fuel") or {}).get("plannedCores") == 0
                      and stack.site_status(MONTLUCON)["fuel"], 30, what="plan at 0 cores")
    assert "would be dumped" in status["reason"]
    wait_for(lambda: "FuelStopped" in site_events(stack, MONTLUCON), 30, what="a FuelStopped event")


def test_a_tenant_burst_preempts_fuel_everywhere_it_runs(stack, heat_namespace, fuel_off_afterwards):
    stack.set_temperatures({s: 50.0 for s in FR_SITES})
    for site in FR_SITES:
        stack.set_fuel(site, True)
    wait_for(lambda: all(len(bound_fuel(stack, s)) == 2 for s in FR_SITES), 90,
             what="every French node full of fuel")
    names = [f"burst-{i}" for i in range(6)]
    for name in names:
        stack.pod(heat_namespace, name, cpu="1", annotations={"heatsched.io/residency": "FR"})

    def all_bound():
        pods = {p.metadata.name: p for p in stack.core.list_namespaced_pod(heat_namespace).items}
        return all(pods.get(n) and pods[n].spec.node_name for n in names) and pods
    pods = wait_for(all_bound, 60, what="the tenant burst bound by preempting fuel")
    for name in names:
        assert stack.node_labels(pods[name].spec.node_name)["node-restriction.kubernetes.io/heatsched-country"] == "FR"
    remaining = sum(len(bound_fuel(stack, s)) for s in FR_SITES)
    assert remaining < 6, remaining  # at least one fuel pod made room
    assert_inside_its_site(stack, [p for s in FR_SITES for p in bound_fuel(stack, s)])


def test_fuel_stays_off_where_the_grid_is_dirtier_than_gas(stack, fuel_off_afterwards):
    stack.set_temperatures({FRANKFURT: 40.0})
    stack.set_fuel(FRANKFURT, True)
    fuel = wait_for(lambda: (stack.site_status(FRANKFURT).get("fuel") or {}).get("guard") and
                    stack.site_status(FRANKFURT)["fuel"], 30, what="Frankfurt's guard verdict in status")
    assert fuel["allowed"] is False and fuel["plannedCores"] == 0 and fuel["pods"] == 0
    assert "0.400 >= backup heat 0.252" in fuel["guard"], fuel
    assert not stack.fuel_pods(FRANKFURT)
    assert not any(p.metadata.labels.get(FUEL_SITE_LABEL) == FRANKFURT
                   for p in stack.core.list_namespaced_pod(FUEL_NAMESPACE).items)
