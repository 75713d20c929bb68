"""What Argo CD says about an Application, and asking it to look again.

``ArgoStatusReader`` reads the ``Application`` custom resource (argoproj.io/v1alpha1)
through the Kubernetes API with the official client: sync status and revision, health,
the last operation's phase and message. ``ArgoRefresher`` calls Argo CD's own REST API
(``GET /api/v1/applications/<name>?refresh=normal``) right after a push, so the rollout
starts now rather than at Argo CD's next poll; it is an optimisation and never raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from apps.gitops.errors import ClusterError, ClusterUnavailable
from apps.gitops.names import DNS1123_SUBDOMAIN

logger = logging.getLogger("apps.gitops.argo")

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
# Argo CD condition types that explain why an Application cannot sync.
_ERROR_CONDITIONS = ("Error", "Warning")


@dataclass(frozen=True)
class ApplicationStatus:
    name: str
    sync_status: str  # Synced | OutOfSync | Unknown | "" (not reported yet)
    revision: str  # the git commit Argo CD last compared with / synced to
    health_status: str  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    operation_phase: str  # Running | Succeeded | Failed | Error | Terminating | ""
    message: str  # the most useful explanation Argo CD gives, "" when all is well
    exists: bool

    @property
    def synced(self) -> bool:
        return self.sync_status == "Synced"

    @property
    def healthy(self) -> bool:
        return self.health_status == "Healthy"

    @property
    def degraded(self) -> bool:
        return self.health_status == "Degraded" or self.operation_phase in ("Failed", "Error")

    @classmethod
    def missing(cls, name: str) -> ApplicationStatus:
        return cls(
            name=name,
            sync_status="",
            revision="",
            health_status="",
            operation_phase="",
            message="The Argo CD Application does not exist (yet).",
            exists=False,
        )

    @classmethod
    def from_resource(cls, name: str, resource: dict[str, Any]) -> ApplicationStatus:
        status = resource.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        operation = status.get("operationState") or {}
        phase = operation.get("phase") or ""
        revision = (
            sync.get("revision")
            or next(iter(sync.get("revisions") or []), "")  # multi-source Applications
            or (operation.get("syncResult") or {}).get("revision")
            or ""
        )
        return cls(
            name=name,
            sync_status=sync.get("status") or "",
            revision=revision if isinstance(revision, str) else "",
            health_status=health.get("status") or "",
            operation_phase=phase,
            message=_message(status, phase),
            exists=True,
        )


def _message(status: dict[str, Any], phase: str) -> str:
    """Pick what a person should read first: failures, then health, then conditions."""
    operation = status.get("operationState") or {}
    health = status.get("health") or {}
    candidates = []
    if phase in ("Failed", "Error"):
        candidates.append(operation.get("message"))
    candidates.append(health.get("message"))
    for condition in status.get("conditions") or []:
        if any(word in (condition.get("type") or "") for word in _ERROR_CONDITIONS):
            candidates.append(f"{condition.get('type')}: {condition.get('message') or ''}")
    if phase not in ("Failed", "Error"):
        candidates.append(operation.get("message"))
    return next((str(c).strip() for c in candidates if c and str(c).strip()), "")[:2000]


def build_api_client(
    *,
    url: str = "",
    token: str = "",
    ca_file: str = "",
    verify_tls: bool = True,
    kubeconfig: str = "",
) -> k8s_client.ApiClient:
    """A Kubernetes API client from URL + token, a kubeconfig file, or in-cluster config."""
    configuration = k8s_client.Configuration()
    if url:
        configuration.host = url.rstrip("/")
        if token:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.verify_ssl = verify_tls
        if ca_file:
            configuration.ssl_ca_cert = ca_file
    elif kubeconfig:
        try:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            raise ClusterError(f"Cannot use the kubeconfig {kubeconfig}: {exc}") from exc
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise ClusterError(
                "No cluster configured: set KUBE_API_URL and KUBE_TOKEN, or KUBECONFIG, or "
                "run Slipway inside the cluster."
            ) from exc
    # Fail fast and let the status poll come back later, instead of urllib3's retries
    # stretching one poll over minutes while a cluster is down.
    configuration.retries = False
    return k8s_client.ApiClient(configuration)


class ArgoStatusReader:
    """Reads ``Application`` objects from the Argo CD namespace."""

    def __init__(
        self, api_client: k8s_client.ApiClient, namespace: str = "argocd", timeout: float = 10
    ):
        self.api_client = api_client
        self.namespace = namespace
        self.timeout = timeout
        self._api = k8s_client.CustomObjectsApi(api_client)

    @classmethod
    def from_settings(cls) -> ArgoStatusReader:
        from django.conf import settings

        api_client = build_api_client(
            url=settings.KUBE_API_URL,
            token=settings.KUBE_TOKEN,
            ca_file=settings.KUBE_CA_FILE,
            verify_tls=settings.KUBE_VERIFY_TLS,
            kubeconfig=settings.KUBECONFIG,
        )
        return cls(
            api_client,
            namespace=settings.ARGOCD_NAMESPACE,
            timeout=settings.CLUSTER_TIMEOUT_SECONDS,
        )

    def get(self, name: str) -> ApplicationStatus:
        """The Application's status; ``exists=False`` when there is none.

        Raises ``ClusterUnavailable`` when the API cannot be reached, times out or
        answers 5xx/429, and ``ClusterError`` for other refusals (e.g. 403).
        """
        if not isinstance(name, str) or not DNS1123_SUBDOMAIN.fullmatch(name):
            raise ClusterError(f"{name!r} is not an Argo CD Application name.")
        try:
            resource = self._api.get_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                _request_timeout=(self.timeout, self.timeout),
            )
        except ApiException as exc:
            if exc.status == 404:
                return ApplicationStatus.missing(name)
            if exc.status in (429, 500, 502, 503, 504):
                raise ClusterUnavailable(
                    f"The Kubernetes API answered {exc.status} {exc.reason} for Application {name}."
                ) from None
            raise ClusterError(
                f"The Kubernetes API refused to read Application {name} in namespace "
                f"{self.namespace}: {exc.status} {exc.reason}."
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(
                f"Cannot reach the Kubernetes API: {type(exc).__name__}."
            ) from None
        return ApplicationStatus.from_resource(name, resource)

    def close(self) -> None:
        self.api_client.close()


class ArgoRefresher:
    """Asks Argo CD to refresh an Application now. Configured or not, never raises."""

    def __init__(
        self,
        api_url: str = "",
        token: str = "",
        *,
        verify_tls: bool = True,
        timeout: float = 10,
        session: requests.Session | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._session = session or requests.Session()

    def __repr__(self) -> str:  # the token must not show up in logs or tracebacks
        return f"ArgoRefresher(api_url={self.api_url!r})"

    @classmethod
    def from_settings(cls) -> ArgoRefresher:
        from django.conf import settings

        return cls(
            settings.ARGOCD_API_URL,
            settings.ARGOCD_TOKEN,
            verify_tls=settings.ARGOCD_VERIFY_TLS,
            timeout=settings.CLUSTER_TIMEOUT_SECONDS,
        )

    @property
    def configured(self) -> bool:
        return bool(self.api_url and self._token)

    def refresh(self, name: str) -> bool:
        """True when Argo CD accepted the refresh request."""
        if not self.configured:
            return False
        if not isinstance(name, str) or not DNS1123_SUBDOMAIN.fullmatch(name):
            logger.warning("Not refreshing %r: not an Application name.", name)
            return False
        url = f"{self.api_url}/api/v1/applications/{quote(name, safe='')}"
        try:
            response = self._session.get(
                url,
                params={"refresh": "normal"},
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
                verify=self.verify_tls,
            )
        except requests.RequestException as exc:
            logger.warning("Argo CD refresh of %s failed: %s", name, type(exc).__name__)
            return False
        if response.status_code != 200:
            logger.warning("Argo CD refresh of %s answered %s.", name, response.status_code)
            return False
        return True

    def close(self) -> None:
        self._session.close()
