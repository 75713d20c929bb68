"""What Argo CD says about an Application, and asking it to look again.

``ArgoStatusReader`` reads the ``Application`` custom resource (argoproj.io/v1alpha1)
through the Kubernetes API with the official client: sync status and the revision of OUR
source (multi-source apps matched by repoURL), health, the last sync operation's phase,
message, failing resource and the revision it was for (Argo CD 3.x field names, from
``pkg/apis/application/v1alpha1/types.go``: ``status.sync``, ``status.health``,
``status.operationState.{phase,message,operation.sync,syncResult}``). ``ArgoRefresher``
calls Argo CD's own REST API (``GET /api/v1/applications/<name>?refresh=normal``) right
after a push, so the rollout starts now rather than at Argo CD's next poll; it is an
optimisation and never raises.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from apps.core.redact import redact_url
from apps.gitops.errors import ClusterError, ClusterUnavailable
from apps.gitops.names import DNS1123_SUBDOMAIN
from apps.gitops.workloads import WorkloadReader

logger = logging.getLogger("apps.gitops.argo")

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
# Argo CD condition types that explain why an Application cannot sync.
_ERROR_CONDITIONS = ("Error", "Warning")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names


@dataclass(frozen=True)
class ApplicationStatus:
    name: str
    sync_status: str  # Synced | OutOfSync | Unknown | "" (not reported yet)
    revision: str  # the commit Argo CD last compared OUR repository's source with
    health_status: str  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    operation_phase: str  # Running | Succeeded | Failed | Error | Terminating | ""
    message: str  # the most useful explanation Argo CD gives, "" when all is well
    exists: bool
    # The commit of our source the last sync operation was for ("" when there was none,
    # or when it named no commit): a Failed operation only matters for that commit.
    operation_revision: str = ""
    operation_message: str = ""  # operationState.message, verbatim
    resource_message: str = ""  # the first resource that failed to sync, "Kind/name: why"
    health_message: str = ""  # status.health.message (Argo CD 3.x may leave it empty)

    @property
    def synced(self) -> bool:
        return self.sync_status == "Synced"

    @property
    def healthy(self) -> bool:
        return self.health_status == "Healthy"

    @property
    def operation_failed(self) -> bool:
        return self.operation_phase in FAILED_PHASES

    @property
    def degraded(self) -> bool:
        return self.health_status == "Degraded" or self.operation_failed

    @property
    def operation_at_revision(self) -> bool:
        """The last operation was for the revision Argo CD now compares with."""
        return bool(self.operation_revision) and self.operation_revision == self.revision

    @property
    def failure_message(self) -> str:
        """Why the last operation failed, in Argo CD's own words."""
        parts = [p for p in (self.operation_message, self.resource_message) if p]
        return "; ".join(dict.fromkeys(parts))[:2000]

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
    def from_resource(
        cls, name: str, resource: dict[str, Any], *, repo_url: str = ""
    ) -> ApplicationStatus:
        """Read an Application; ``repo_url`` picks our source in a multi-source app."""
        spec = resource.get("spec") or {}
        status = resource.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        operation = status.get("operationState") or {}
        phase = operation.get("phase") or ""
        revision, operation_revision, problem = _our_revisions(spec, sync, operation, repo_url)
        message = problem or _message(status, phase)
        return cls(
            name=name,
            sync_status=sync.get("status") or "",
            revision=revision,
            health_status=health.get("status") or "",
            operation_phase=phase,
            message=message,
            exists=True,
            operation_revision=operation_revision,
            operation_message=_text(operation.get("message")),
            resource_message=_failed_resource(operation),
            health_message=_text(health.get("message")),
        )


FAILED_PHASES = ("Failed", "Error")


def _text(value: Any) -> str:
    return str(value).strip()[:2000] if isinstance(value, str) else ""


def _sha(value: Any) -> str:
    """A commit id, or "" for anything else (a branch name, HEAD, a Helm chart version)."""
    return value if isinstance(value, str) and _COMMIT.fullmatch(value) else ""


def _at(items: Any, index: int) -> Any:
    return items[index] if isinstance(items, list) and 0 <= index < len(items) else None


def _our_revisions(
    spec: dict[str, Any], sync: dict[str, Any], operation: dict[str, Any], repo_url: str
) -> tuple[str, str, str]:
    """(compared revision, last operation's revision, problem) for our repository.

    A single-source Application reports ``status.sync.revision``; a multi-source one
    reports ``status.sync.revisions`` in the order of ``spec.sources``, so our entry is
    found by repoURL, never by position (a Helm chart or values repo may come first).
    """
    requested = (operation.get("operation") or {}).get("sync") or {}
    result = operation.get("syncResult") or {}
    sources = spec.get("sources")
    if not sources:
        compared = _text(sync.get("revision"))
        ran = _sha(result.get("revision")) or _sha(requested.get("revision"))
        return compared, ran, ""
    index = _source_index(sources, repo_url)
    if index is None:
        return (
            "",
            "",
            f"None of the Application's {len(sources)} sources uses the GitOps repository "
            f"{redact_url(repo_url)}; Slipway cannot tell which revision it runs.",
        )
    compared = _text(_at(sync.get("revisions"), index))
    ran = _sha(_at(result.get("revisions"), index)) or _sha(_at(requested.get("revisions"), index))
    return compared, ran, ""


def _source_index(sources: list[Any], repo_url: str) -> int | None:
    if not repo_url:
        # Nothing to match with (tests, tools): the only git source, else the first one.
        git = [i for i, s in enumerate(sources) if isinstance(s, dict) and not s.get("chart")]
        return git[0] if len(git) == 1 else 0
    ours = same_repository_key(repo_url)
    for index, source in enumerate(sources):
        if isinstance(source, dict) and same_repository_key(source.get("repoURL") or "") == ours:
            return index
    return None


def same_repository_key(url: str) -> str:
    """``host/path`` of a git URL, so https, ssh and scp-like spellings of one repository
    compare equal (Argo CD itself normalises case, ``.git`` and a trailing slash)."""
    text = (url or "").strip().lower()
    if "://" in text:
        parts = urlsplit(text)
        host, path = (parts.hostname or ""), parts.path
    elif ":" in text and not text.startswith("/"):  # git@host:org/repo.git
        host, _, path = text.partition(":")
        host = host.rpartition("@")[2]
    else:
        host, path = "", text
    path = path.strip("/")
    path = path.removesuffix(".git")
    return f"{host}/{path}"


def _failed_resource(operation: dict[str, Any]) -> str:
    """The first resource whose sync failed, with Argo CD's message for it."""
    resources = (operation.get("syncResult") or {}).get("resources") or []
    for item in resources:
        if not isinstance(item, dict):
            continue
        failed = item.get("status") == "SyncFailed" or item.get("hookPhase") in FAILED_PHASES
        if failed and item.get("message"):
            return f"{item.get('kind') or '?'}/{item.get('name') or '?'}: {_text(item['message'])}"
    return ""


def _message(status: dict[str, Any], phase: str) -> str:
    """Pick what a person should read first: failures, then health, then conditions."""
    operation = status.get("operationState") or {}
    health = status.get("health") or {}
    candidates = []
    if phase in FAILED_PHASES:
        candidates.append(operation.get("message"))
        candidates.append(_failed_resource(operation))
    candidates.append(health.get("message"))
    for condition in status.get("conditions") or []:
        if any(word in (condition.get("type") or "") for word in _ERROR_CONDITIONS):
            candidates.append(f"{condition.get('type')}: {condition.get('message') or ''}")
    if phase not in FAILED_PHASES:
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
        self,
        api_client: k8s_client.ApiClient,
        namespace: str = "argocd",
        timeout: float = 10,
        *,
        repo_url: str = "",
    ):
        self.api_client = api_client
        self.namespace = namespace
        self.timeout = timeout
        self.repo_url = repo_url  # our GitOps repository: picks our source in multi-source apps
        self._api = k8s_client.CustomObjectsApi(api_client)
        # The serving objects' own status, where Argo CD's health says too little.
        self.workloads = WorkloadReader(api_client, timeout=timeout)

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
            repo_url=settings.GITOPS_REPO_URL,
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
        return ApplicationStatus.from_resource(name, resource, repo_url=self.repo_url)

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
