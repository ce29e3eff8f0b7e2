"""Fixtures shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from heatsched.controller.store import Store
from heatsched.models import load_manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOW = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Store:
    """An operator Store holding every example HeatSite and ThermalDemand, its clock at NOW."""
    s = Store(clock=lambda: NOW.timestamp())
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for obj in load_manifest(path):
            (s.set_site if type(obj).__name__ == "HeatSite" else s.set_demand)(obj)
    return s
