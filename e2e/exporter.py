"""A small Prometheus exporter whose exposition the test writes directly (in-process, threaded).

Why not the twin: issue-3 scenarios need answers a physical model never gives (several series for one
site, NaN, a site that vanishes), and exact values at exact times.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SettableExporter:
    def __init__(self) -> None:
        self.lines: dict[str, str] = {}  # key -> one exposition line
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with exporter._lock:
                    text = "".join(line + "\n" for line in exporter.lines.values())
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> SettableExporter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_temperature(self, site: str, value: float | str, *, extra_series: bool = False) -> None:
        with self._lock:
            self.lines[site] = f'heatsched_twin_tank_temperature_celsius{{site="{site}"}} {value}'
            key = site + "#2"
            if extra_series:
                self.lines[key] = f'heatsched_twin_tank_temperature_celsius{{site="{site}",sensor="b"}} {value}'
            else:
                self.lines.pop(key, None)

    def remove(self, site: str) -> None:
        with self._lock:
            self.lines.pop(site, None)
            self.lines.pop(site + "#2", None)
