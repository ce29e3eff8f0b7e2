"""A PromQL answer becomes a reading only when it is exactly one finite number; everything else is a
TelemetryError with a reason, so a broken answer is never read as 0 °C."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import pytest
from heatsched.telemetry.prometheus import PrometheusSource
from heatsched.telemetry.source import TelemetryError, parse_instant_vector

Q = 'heatsched_twin_tank_temperature_celsius{site="a"}'


def series(value, t=1_700_000_000.0, **labels):
    return {"metric": {"site": "a", **labels}, "value": [t, value]}


@pytest.mark.parametrize("result, reason", [
    ([], "NoData"),
    ([series("61"), series("62", sensor="b")], "AmbiguousSeries"),
    ([series("NaN")], "NotANumber"),
    ([series("+Inf")], "NotANumber"),
    ([series("hot")], "NonNumeric"),
    ([series(None)], "NonNumeric"),
    ([{"metric": {}}], "MalformedAnswer"),
    ([{"metric": {}, "value": [1]}], "MalformedAnswer"),
    ({"resultType": "vector"}, "MalformedAnswer"),
    (None, "MalformedAnswer"),
    (["oops"], "MalformedAnswer"),
])
def test_a_bad_answer_is_a_telemetry_error_with_its_reason(result, reason):
    with pytest.raises(TelemetryError) as err:
        parse_instant_vector(result, Q)
    assert err.value.reason == reason
    assert Q in err.value.message


def test_one_finite_series_is_a_value_and_a_time():
    assert parse_instant_vector([series("61.25", t=1_700_000_123.5)], Q) == (61.25, 1_700_000_123.5)


class _Prometheus(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, object]] = {}

    def do_GET(self):
        from urllib.parse import parse_qs, urlparse

        query = parse_qs(urlparse(self.path).query)["query"][0]
        body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                          "result": self.answers.get(query, [])}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_sample_time_is_the_scrape_time_not_the_query_time(prometheus):
    _Prometheus.answers = {Q: [series("58.5", t=2_000_000_000.0)],
                           f"timestamp({Q})": [series("1999999940", t=2_000_000_000.0)]}
    sample = PrometheusSource(f"http://127.0.0.1:{prometheus.server_address[1]}").sample(Q)
    assert sample.value == 58.5
    assert sample.at.timestamp() == 1_999_999_940


def test_unreachable_prometheus_is_a_telemetry_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TelemetryError) as err:
        PrometheusSource(f"http://127.0.0.1:{port}", timeout_s=1).sample(Q)
    assert err.value.reason == "Unreachable"


def test_prometheus_tls_is_verified_unless_explicitly_turned_off():
    from heatsched.telemetry.prometheus import PrometheusSource

    assert PrometheusSource("https://prom.example")._prom._session.verify is True
    assert PrometheusSource("https://prom.example", verify="/etc/ca.pem")._prom._session.verify == "/etc/ca.pem"
    assert PrometheusSource("https://prom.example", verify=False)._prom._session.verify is False


async def test_blocking_calls_run_in_the_controllers_own_pool_not_the_default_executor():
    import threading

    from heatsched.offloop import blocking

    assert await blocking(lambda: threading.current_thread().name) != threading.current_thread().name
    assert (await blocking(lambda: threading.current_thread().name)).startswith("heatsched-io")