"""The chart's alert rules (charts/heatsched/files/alerts.yaml) pass `promtool check rules` and the unit tests of
tests/alerts/alerts_test.yaml, run by the real promtool (Debian's Prometheus package ships it; scripts/setup.sh
installs that package). Each alert has a runbook section in docs/runbook.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "charts" / "heatsched" / "files" / "alerts.yaml"
TESTS = ROOT / "tests" / "alerts" / "alerts_test.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup.sh installs the prometheus package that ships it")
        pytest.skip("promtool is not installed")
    return found


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_the_rules_are_valid_for_promtool():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_fires_when_it_should_and_not_before():
    out = subprocess.run([promtool(), "test", "rules", TESTS.name], cwd=TESTS.parent, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert tested == {a["alert"] for a in alerts()}  # none left untested


def test_every_alert_has_a_severity_and_a_runbook_section():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", runbook, re.MULTILINE)}
    for a in alerts():
        assert a["labels"]["severity"] in ("warning", "critical"), a["alert"]
        path, anchor = a["annotations"]["runbook"].split("#")
        assert path == "docs/runbook.md" and anchor in anchors, a["alert"]
