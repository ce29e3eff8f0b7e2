"""Child processes that never outlive their owner by accident.

Each service runs in its own session (process group) with its output in a log file, so it can be stopped
as a group (SIGTERM, then SIGKILL after a grace period) and its log tail shown when it dies early.
Detached clusters (the `heatsched cluster up` CLI) record pids and start times in a state file; `down`
checks the start time before killing, so a recycled pid is never hit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def proc_start_time(pid: int) -> str | None:
    """Kernel start time of a pid (field 22 of /proc/pid/stat), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Service:
    """One running binary: name, argv, log file, and its Popen once started."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    started: str | None = None
    port: int | None = None  # where the harness reaches it (heatsched: metrics or extender port)

    def start(self, env: dict[str, str] | None = None) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )
        self.pid = self.popen.pid
        self.started = proc_start_time(self.pid)
        return self

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and proc_start_time(self.pid) == self.started

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited early; last lines of {self.log}:\n{log_tail(self.log)}")

    def stop(self, grace: float = 10.0) -> None:
        if self.pid is None or not self.alive():
            self._reap()
            return
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.alive():
            self._reap(block=False)
            time.sleep(0.05)
        if self.alive():
            _signal_group(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.alive():
                self._reap(block=False)
                time.sleep(0.05)
        self._reap()

    def _reap(self, block: bool = True) -> None:
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5 if block else 0.001)
            except subprocess.TimeoutExpired:
                pass

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "started": self.started, "log": str(self.log)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Service:
        return cls(name=data["name"], argv=[], log=Path(data["log"]), pid=data["pid"], started=data["started"])


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
