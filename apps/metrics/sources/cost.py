"""What each live service costs: per hour and per day (per 1,000 predictions is derived by
the poll from cost per hour and request rate).

Two ways, chosen by ``METRICS_COST_BACKEND``:

- ``kubernetes``: the resource *requests* of the target's pods, read through the
  Kubernetes API (one ``list_namespaced_pod`` per environment namespace, selected by
  ``app.kubernetes.io/managed-by=slipway`` and grouped by ``app.kubernetes.io/instance =
  <service>-<environment>``, the labels every renderer puts on pods), priced with
  ``METRICS_PRICES`` per CPU core-hour, GiB-hour of memory and GPU-hour. Requests, not
  usage: requests are what the scheduler reserves and what a cluster bill follows.
- ``opencost``: OpenCost's ``/allocation`` API, aggregated by the instance label, over
  ``METRICS_OPENCOST_WINDOW``; one call per poll.

A target without pods gets no reading: "scaled to zero" and "pods not labelled as
expected" look the same from here, and a made-up zero would hide the second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import requests
import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from apps.metrics import conf
from apps.metrics.catalog import Metric
from apps.metrics.sources.base import (
    MetricsConfigError,
    Reading,
    SourceUnavailable,
    Target,
    targets_by_environment,
)

LABEL_INSTANCE = "app.kubernetes.io/instance"
POD_SELECTOR = "app.kubernetes.io/managed-by=slipway"
GIB = Decimal(1024**3)


def prices_from_conf() -> dict[str, float]:
    prices = {**conf.DEFAULTS["METRICS_PRICES"], **(conf.get("METRICS_PRICES") or {})}
    for name in ("cpu_core_hour", "memory_gib_hour", "gpu_hour"):
        try:
            prices[name] = float(prices[name])
        except (TypeError, ValueError):
            raise MetricsConfigError(f"METRICS_PRICES[{name!r}] is not a number.") from None
        if prices[name] < 0:
            raise MetricsConfigError(f"METRICS_PRICES[{name!r}] is negative.")
    return prices


def _is_gpu(resource: str) -> bool:
    return resource == "gpu" or resource.endswith("/gpu")


def resource_totals(requests_: Mapping[str, str]) -> dict[str, Decimal]:
    """{"cpu": cores, "memory": bytes, "gpu": devices} from one requests mapping."""
    totals = {"cpu": Decimal(0), "memory": Decimal(0), "gpu": Decimal(0)}
    for name, quantity in (requests_ or {}).items():
        kind = "gpu" if _is_gpu(name) else name
        if kind in totals:
            totals[kind] += parse_quantity(quantity)
    return totals


def hourly_price(totals: Mapping[str, Decimal], prices: Mapping[str, float]) -> float:
    return (
        float(totals["cpu"]) * prices["cpu_core_hour"]
        + float(totals["memory"] / GIB) * prices["memory_gib_hour"]
        + float(totals["gpu"]) * prices["gpu_hour"]
    )


def pod_requests(pod: Mapping) -> dict[str, Decimal]:
    """A pod's effective requests as the scheduler counts them: the larger of the sum over
    its containers and the largest init container, plus the pod overhead.

    ``pod`` is the API's JSON object as a dict (camelCase keys), not a client model."""
    spec = pod.get("spec") or {}
    total = {"cpu": Decimal(0), "memory": Decimal(0), "gpu": Decimal(0)}
    for container in spec.get("containers") or []:
        for kind, value in resource_totals(_requests_of(container)).items():
            total[kind] += value
    for container in spec.get("initContainers") or []:
        for kind, value in resource_totals(_requests_of(container)).items():
            total[kind] = max(total[kind], value)
    for kind, value in resource_totals(spec.get("overhead") or {}).items():
        total[kind] += value
    return total


def _requests_of(container: Mapping) -> Mapping[str, str]:
    return (container.get("resources") or {}).get("requests") or {}


def _counts(pod: Mapping) -> bool:
    """Pods that hold resources on a node: running, or pending but already scheduled."""
    phase = (pod.get("status") or {}).get("phase") or ""
    return phase == "Running" or (
        phase == "Pending" and bool((pod.get("spec") or {}).get("nodeName"))
    )


def _instance_of(pod: Mapping) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_INSTANCE)


def cost_readings(target: Target, per_hour: float, at: datetime) -> list[Reading]:
    return [
        Reading(target.service, target.environment, Metric.COST_PER_HOUR, per_hour, at),
        Reading(target.service, target.environment, Metric.COST_PER_DAY, per_hour * 24, at),
    ]


class KubernetesCostSource:
    name = "cost"

    def __init__(
        self, api_client: k8s_client.ApiClient, *, prices: Mapping[str, float], timeout: float
    ):
        self.api_client = api_client
        self.prices = dict(prices)
        self.timeout = timeout
        self.requests_sent = 0
        self._api = k8s_client.CoreV1Api(api_client)

    @classmethod
    def from_conf(cls) -> KubernetesCostSource:
        from apps.gitops.argo import build_api_client
        from apps.gitops.errors import ClusterError

        try:
            api_client = build_api_client(
                url=conf.get("KUBE_API_URL"),
                token=conf.get("KUBE_TOKEN"),
                ca_file=conf.get("KUBE_CA_FILE"),
                verify_tls=conf.get("KUBE_VERIFY_TLS"),
                kubeconfig=conf.get("KUBECONFIG"),
            )
        except ClusterError as exc:
            raise MetricsConfigError(f"The cost source cannot reach a cluster: {exc}") from None
        return cls(
            api_client, prices=prices_from_conf(), timeout=conf.get("CLUSTER_TIMEOUT_SECONDS")
        )

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]:
        self.requests_sent = 0
        readings: list[Reading] = []
        for namespace, members in sorted(targets_by_environment(targets).items()):
            by_instance: dict[str, dict[str, Decimal]] = {}
            for pod in self._pods(namespace):
                try:
                    instance = _instance_of(pod)
                    if not instance or not _counts(pod):
                        continue
                    requests_ = pod_requests(pod)
                except (AttributeError, TypeError, ValueError) as exc:  # a malformed pod
                    raise SourceUnavailable(
                        f"The Kubernetes API sent a pod in {namespace!r} Slipway cannot "
                        f"read: {type(exc).__name__}: {exc}"
                    ) from None
                total = by_instance.setdefault(
                    instance, {"cpu": Decimal(0), "memory": Decimal(0), "gpu": Decimal(0)}
                )
                for kind, value in requests_.items():
                    total[kind] += value
            for target in members:
                if target.instance in by_instance:
                    per_hour = hourly_price(by_instance[target.instance], self.prices)
                    readings += cost_readings(target, per_hour, at)
        return readings

    def _pods(self, namespace: str) -> list[dict]:
        """The namespace's Slipway pods as plain dicts: the JSON body read with json.loads
        rather than turned into client models (a model per pod, container and quantity
        cost more than the whole rest of the poll)."""
        self.requests_sent += 1
        try:
            response = self._api.list_namespaced_pod(
                namespace,
                label_selector=POD_SELECTOR,
                _request_timeout=(self.timeout, self.timeout),
                _preload_content=False,
            )
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
        except ApiException as exc:
            if exc.status in (401, 403):
                raise MetricsConfigError(
                    f"The Kubernetes API refused to list pods in namespace {namespace!r} "
                    f"({exc.status} {exc.reason}); the cost source needs `list pods` there."
                ) from None
            raise SourceUnavailable(
                f"The Kubernetes API answered {exc.status} {exc.reason} listing pods in "
                f"{namespace!r}."
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SourceUnavailable(
                f"Cannot reach the Kubernetes API: {type(exc).__name__}."
            ) from None
        except ValueError:  # not JSON
            raise SourceUnavailable(
                f"The Kubernetes API sent a pod list for {namespace!r} that is not JSON."
            ) from None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(pod, dict) for pod in items):
            raise SourceUnavailable(
                f"The Kubernetes API sent a pod list for {namespace!r} without its items."
            )
        return items

    def close(self) -> None:
        self.api_client.close()


class OpenCostSource:
    name = "cost"

    def __init__(
        self,
        url: str,
        *,
        aggregate: str = "label:app_kubernetes_io_instance",
        window: str = "1h",
        timeout: float = 10,
        session: requests.Session | None = None,
    ):
        self.url = url.rstrip("/")
        self.aggregate = aggregate
        self.window = window
        self.timeout = timeout
        self._session = session or requests.Session()
        self.requests_sent = 0

    @classmethod
    def from_conf(cls) -> OpenCostSource:
        url = conf.get("METRICS_OPENCOST_URL")
        if not url:
            raise MetricsConfigError(
                "METRICS_COST_BACKEND is 'opencost' but METRICS_OPENCOST_URL is empty."
            )
        return cls(
            url,
            aggregate=conf.get("METRICS_OPENCOST_AGGREGATE"),
            window=conf.get("METRICS_OPENCOST_WINDOW"),
            timeout=conf.get("CLUSTER_TIMEOUT_SECONDS"),
        )

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]:
        self.requests_sent = 1
        try:
            response = self._session.get(
                f"{self.url}/allocation",
                params={"window": self.window, "aggregate": self.aggregate, "accumulate": "true"},
                timeout=(self.timeout, self.timeout),
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"Cannot reach OpenCost at {self.url}: {type(exc).__name__}."
            ) from None
        if response.status_code != 200:
            raise SourceUnavailable(f"OpenCost at {self.url} answered HTTP {response.status_code}.")
        try:
            sets = response.json()["data"]
            allocations = sets[0] if sets else {}
            if not isinstance(allocations, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, IndexError):
            raise SourceUnavailable(
                f"OpenCost at {self.url} answered something that is not an allocation set."
            ) from None
        readings: list[Reading] = []
        for target in targets:
            allocation = allocations.get(target.instance)
            if not isinstance(allocation, dict):
                continue
            try:
                total, minutes = float(allocation["totalCost"]), float(allocation["minutes"])
            except (KeyError, TypeError, ValueError):
                continue
            if minutes > 0:
                readings += cost_readings(target, total / (minutes / 60), at)
        return readings

    def close(self) -> None:
        self._session.close()
