"""The local control-plane harness: pinned binaries, certificates, scheduler profile, process teardown."""

from __future__ import annotations

import os
import re
import time

import pytest
from cryptography import x509
from heatsched.cluster.controlplane import render_scheduler_config
from heatsched.cluster.pki import ADMIN, Identity, Pki
from heatsched.cluster.procs import Service, proc_start_time
from heatsched.cluster.toolchain import MissingBinary, Toolchain, pinned_versions


def test_versions_are_pinned_to_the_issue_lines():
    v = pinned_versions()
    assert re.fullmatch(r"v1\.36\.\d+", v["KUBERNETES_VERSION"])
    assert re.fullmatch(r"v3\.6\.\d+", v["ETCD_VERSION"])
    assert re.fullmatch(r"v0\.8\.\d+", v["KWOK_VERSION"])
    assert re.fullmatch(r"v3\.2\d\.\d+", v["HELM_VERSION"])


def test_missing_binary_says_which_command_builds_it(tmp_path):
    tc = Toolchain(pinned_versions(), tmp_path)
    with pytest.raises(MissingBinary, match=r"kube-apiserver v1\.36\.\d+ not found .*`toolchain/build.sh kubernetes`"):
        tc.path("kube-apiserver")
    with pytest.raises(MissingBinary, match="toolchain/build.sh etcd"):
        tc.path("etcd")


def test_serving_certificate_is_signed_by_the_ca_and_covers_loopback(tmp_path):
    pki = Pki.create(tmp_path, extra=[Identity("system:node:n1", ("system:nodes",))], hosts=("10.1.2.3",))
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    ips = {str(i) for i in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
           .get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "10.1.2.3"} <= ips
    rows = pki.token_file.read_text().splitlines()
    assert any(r.endswith(f'{ADMIN.user},{ADMIN.user},"system:masters"') for r in rows)
    assert any('system:node:n1,system:node:n1,"system:nodes"' in r for r in rows)
    assert oct(pki.sa_key.stat().st_mode & 0o777) == "0o600"


def test_heat_aware_profile_calls_the_extender_ignorably_and_fast():
    cfg = render_scheduler_config("/tmp/kc", "http://127.0.0.1:9/scheduler")
    assert [p["schedulerName"] for p in cfg["profiles"]] == ["heat-aware"]
    (ext,) = cfg["extenders"]
    assert ext["urlPrefix"] == "http://127.0.0.1:9/scheduler"
    assert ext["ignorable"] is True and ext["nodeCacheCapable"] is True
    assert ext["filterVerb"] == "filter" and ext["prioritizeVerb"] == "prioritize"
    assert float(ext["httpTimeout"].rstrip("s")) < 5 and ext["weight"] >= 5
    assert cfg["clientConnection"]["kubeconfig"] == "/tmp/kc"
    assert "extenders" not in render_scheduler_config("/tmp/kc", None)


def test_stopping_a_service_kills_its_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    svc = Service("sleepy", ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], tmp_path / "log").start()
    deadline = time.monotonic() + 5
    while not os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)
    child = int(pidfile.read_text())
    assert proc_start_time(child) is not None
    svc.stop(grace=2)
    assert not svc.alive()
    deadline = time.monotonic() + 5
    while proc_start_time(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_start_time(child) is None, "the grandchild outlived its service"


def test_a_recycled_pid_is_not_mistaken_for_the_service(tmp_path):
    svc = Service.from_state({"name": "x", "pid": os.getpid(), "started": "0", "log": str(tmp_path / "l")})
    assert not svc.alive()
