"""A small client for Prometheus's HTTP API: instant queries, with a timeout on every call.

``POST /api/v1/query`` with ``query``, ``time`` (Unix seconds) and ``timeout`` (so
Prometheus itself gives up too). Prometheus answers ``{"status": "success", "data":
{"resultType": "vector", "result": [{"metric": {...}, "value": [t, "1.5"]}]}}`` or
``{"status": "error", "errorType": "bad_data", "error": "..."}`` with 400 (the query is
wrong), 422 (it cannot be executed) or 503 (timeout, aborted).

Two errors come out: ``PrometheusQueryError`` when Prometheus refused the query itself
(the caller turns it into a configuration error naming the template) and
``PrometheusUnavailable`` for everything that says nothing about the query: no answer,
timeouts, 5xx, and bodies that are not Prometheus's JSON.

A timeout is not always a 503 ``timeout``: Prometheus (2.42, the version the tests run)
checks its deadline between evaluation steps (``errorType: timeout``, 503), but when the
deadline passes while the storage expands a selector's series, Go's
``context.DeadlineExceeded`` reaches the API wrapped in another error, which maps to
``errorType: execution`` with HTTP 422 ("expanding series: context deadline exceeded").
That is a slow or loaded Prometheus, not a wrong template, so it is unavailable too.
"""

from __future__ import annotations

import math
from datetime import datetime

import requests

from apps.metrics.sources.base import SourceUnavailable

# Prometheus errorTypes that mean "your query is wrong", not "try again later".
_QUERY_ERROR_TYPES = frozenset({"bad_data", "execution"})
# Go's context errors as Prometheus prints them inside an ``execution`` error: the query
# ran out of time or was cancelled (the server is slow or shutting down), whatever its text.
_CONTEXT_ERRORS = ("context deadline exceeded", "context canceled")


class PrometheusUnavailable(SourceUnavailable):
    pass


class PrometheusQueryError(Exception):
    def __init__(self, error_type: str, message: str):
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type}: {message}")


Sample = tuple[dict[str, str], float]


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10,
        token: str = "",
        verify_tls: bool = True,
        session: requests.Session | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._token = token
        self.verify_tls = verify_tls
        self._session = session or requests.Session()
        self.requests_sent = 0

    def __repr__(self) -> str:  # the token must not show up in logs or tracebacks
        return f"PrometheusClient(url={self.url!r})"

    def query(self, promql: str, *, at: datetime | None = None) -> list[Sample]:
        """Evaluate ``promql`` at ``at`` (default: Prometheus's now); an instant vector,
        as (labels, value) pairs. Values may be NaN or infinite: the caller decides."""
        # Plain seconds: Prometheus reads a float there, while a unit form such as
        # "0.5s" is refused (its durations take whole numbers), a 400 for the query.
        form = {"query": promql, "timeout": f"{self.timeout:g}"}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self.requests_sent += 1
        try:
            response = self._session.post(
                f"{self.url}/api/v1/query",
                data=form,
                headers=headers,
                # connect and read timeouts; Prometheus's own timeout is a little shorter
                timeout=(self.timeout, self.timeout + 1),
                verify=self.verify_tls,
            )
        except requests.Timeout:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout:g} s."
            ) from None
        except requests.RequestException as exc:
            raise PrometheusUnavailable(
                f"Cannot reach Prometheus at {self.url}: {type(exc).__name__}."
            ) from None
        return self._parse(response)

    def _parse(self, response: requests.Response) -> list[Sample]:
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code} with "
                f"something that is not its JSON ({kind})."
            ) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code} with JSON "
                "that is not a Prometheus API response."
            )
        if body["status"] == "error":
            error_type = str(body.get("errorType") or "")
            message = str(body.get("error") or "")[:1000]
            if any(marker in message for marker in _CONTEXT_ERRORS):
                raise PrometheusUnavailable(
                    f"Prometheus at {self.url} did not finish the query within its "
                    f"{self.timeout:g} s timeout (HTTP {response.status_code}, "
                    f"{error_type or 'error'}): {message}"
                )
            if error_type in _QUERY_ERROR_TYPES or response.status_code in (400, 422):
                raise PrometheusQueryError(error_type or str(response.status_code), message)
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} could not run the query "
                f"(HTTP {response.status_code}, {error_type or 'error'}): {message}"
            )
        if response.status_code // 100 != 2:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code}."
            )
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise PrometheusUnavailable(f"Prometheus at {self.url} sent a result without data.")
        if data.get("resultType") != "vector":
            raise PrometheusQueryError(
                "result_type",
                f"the query returned a {data.get('resultType')}, not an instant vector",
            )
        # Straight from the decoded JSON into (labels, value) tuples: the label object is
        # used as decoded (JSON object keys are strings, and Prometheus's values are too),
        # no copy or model per series; a vector can hold tens of thousands of them.
        samples: list[Sample] = []
        append = samples.append
        try:
            for item in data["result"]:
                labels = item["metric"]
                if type(labels) is not dict:
                    raise TypeError
                append((labels, float(item["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} sent a malformed sample."
            ) from None
        return samples

    def close(self) -> None:
        self._session.close()


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
