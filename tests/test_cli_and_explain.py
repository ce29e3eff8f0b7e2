"""The command line: every sub-command is reachable with a useful --help; explain speaks plainly."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import pytest
from heatsched.cli import build_parser, main
from heatsched.explain import render


@pytest.mark.parametrize("command", ["demo", "cluster", "controller", "placement", "explain", "audit", "twin", "simulate",
                                     "crds", "policies"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def pod(node=None, annotations=None, phase="Pending", conditions=()):
    return NS(metadata=NS(namespace="t", name="p", annotations=annotations or {}),
              spec=NS(scheduler_name="heat-aware", node_name=node),
              status=NS(phase=phase, conditions=list(conditions)))


def test_a_bound_pod_is_explained_by_its_placement_record():
    record = {"node": "m-1", "site": "montlucon-residence", "country": "FR", "state": "Cold", "tankCelsius": 50.0,
              "score": 0.93, "why": "site montlucon-residence Cold at 50.0 °C", "candidates": 9, "best": "m-1"}
    text = render(pod("m-1", {"heatsched.io/placement": json.dumps(record), "heatsched.io/residency": "FR"},
                      "Running"), [])
    assert "montlucon-residence (FR), tank 50.0 °C, state Cold" in text
    assert "score: 0.93 (best of 9 nodes: m-1)" in text and "residency: FR" in text


def test_a_pending_pod_is_explained_by_the_schedulers_last_words():
    events = [NS(reason="FailedScheduling", message="0/8 nodes are available: 8 node(s) didn't match Pod's node "
                 "affinity/selector.")]
    text = render(pod(annotations={"heatsched.io/residency": "CH"}), events)
    assert "Pending" in text and "didn't match Pod's node affinity" in text and "residency: CH" in text


def test_a_pod_bound_without_a_record_says_so():
    assert "no heatsched placement record" in render(pod("n-1", phase="Running"), [])


def test_parser_lists_commands_in_help():
    help_text = build_parser().format_help()
    listed = {line.split()[0] for line in help_text.splitlines() if line.startswith("    ") and line.split()}
    for command in ("demo", "cluster", "controller", "placement", "explain", "twin", "simulate", "crds", "policies", "audit"):
        assert command in listed  # a line of its own in the command list, not a word of some description


def test_a_bound_pod_without_annotation_is_explained_by_the_placement_services_memory():
    import http.server
    import threading

    from heatsched.explain import fetch_record

    record = {"node": "m-1", "site": "montlucon", "country": "FR", "state": "Cold", "tankCelsius": 52.0,
              "score": 0.91, "why": "tank cold", "candidates": 3, "best": "m-1"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            known = self.path == "/explain/t/p"
            self.send_response(200 if known else 404)
            self.end_headers()
            self.wfile.write(json.dumps(record if known else {"error": "none"}).encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        text = render(pod("m-1", {"heatsched.io/residency": "FR"}, phase="Running"), [], fetch_record(url, "t", "p"))
        assert "site: montlucon (FR)" in text and "why: tank cold" in text
        assert fetch_record(url, "t", "other") is None and fetch_record("http://127.0.0.1:1", "t", "p") is None
    finally:
        server.shutdown()


def test_the_lock_file_matches_pyproject():
    """uv.lock is what setup.sh, CI and the image install; a dependency edited without `uv lock` fails here."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    uv = root / ".uv" / "bin" / "uv"
    if not uv.exists():
        found = shutil.which("uv")
        if found is None:
            pytest.skip("uv is not installed (scripts/setup.sh installs it in .uv)")
        uv = Path(found)
    out = subprocess.run([str(uv), "lock", "--check", "--offline"], cwd=root, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
