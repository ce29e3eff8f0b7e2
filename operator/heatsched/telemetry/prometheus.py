"""The Prometheus implementation of `TemperatureSource`, through prometheus-api-client.

It is blocking HTTP, so the operator calls it off the event loop (run_in_executor) and only from the
telemetry refresher, never from a scheduling request. Each sample asks two instant queries: the value, and
`timestamp(<query>)` for when it was really scraped (an instant query is stamped with the evaluation time,
which would make every answer look fresh). Connection problems are TelemetryError("Unreachable").
"""

from __future__ import annotations

from typing import Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from heatsched.telemetry.source import Sample, TelemetryError, parse_instant_vector, utc


class PrometheusSource:
    """`verify`: an https URL's certificate is checked against the system CAs (True), a CA bundle (a path), or
    not at all (False, only when asked for: `--prometheus-insecure-skip-verify`)."""

    def __init__(self, url: str, *, timeout_s: float = 3.0, verify: bool | str = True) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._prom = PrometheusConnect(url=url, disable_ssl=verify is False, retry=Retry(total=0))
        self._prom._session.verify = verify

    def _query(self, query: str) -> Any:
        """The answer's decoded `data.result` (JSON, normally a list of series; parse_instant_vector checks it)."""
        try:
            return self._prom.custom_query(query=query, params={"timeout": f"{int(self.timeout_s * 1000)}ms"},
                                           timeout=self.timeout_s)
        except RequestException as exc:
            raise TelemetryError("Unreachable", f"Prometheus at {self.url} unreachable: {exc}") from None
        except PrometheusApiClientException as exc:
            raise TelemetryError("QueryFailed", f"Prometheus refused {query!r}: {exc}") from None
        except ValueError as exc:  # JSON decoding
            raise TelemetryError("MalformedAnswer", f"Prometheus answer to {query!r} is not JSON: {exc}") from None

    def sample(self, query: str) -> Sample:
        value, _ = parse_instant_vector(self._query(query), query)
        scraped, _ = parse_instant_vector(self._query(f"timestamp({query})"), f"timestamp({query})")
        return Sample(value=value, at=utc(scraped))
