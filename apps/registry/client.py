"""The one door to MLflow: a small client over ``MlflowClient`` with timeouts and paging.

Everything Slipway asks MLflow goes through :class:`RegistryClient`, which

* talks to one tracking URI (an ``http(s)://`` tracking server, or a ``sqlite:///`` store
  for the embedded demo and the tests) and never touches MLflow's process-wide tracking
  URI;
* bounds every call: MLflow reads its HTTP timeout and retry policy from environment
  variables on each request (``MLFLOW_HTTP_REQUEST_TIMEOUT``, default 120 s, and
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7 with exponential backoff: minutes of
  waiting on a dead server). The client sets them for the duration of its own calls only,
  under a lock, and restores them afterwards, so other code in the process keeps MLflow's
  defaults. An optional overall budget caps a whole sync (a request, a task time limit);
* pages through every search until MLflow stops returning a page token;
* turns whatever goes wrong into three exceptions: :class:`RegistryUnavailable` (down,
  slow, garbage, refused credentials: try again later, keep the last good data),
  :class:`RegistryNotFound` (MLflow answered that the thing does not exist) and
  :class:`RegistryRejected` (MLflow refused the request as invalid);
* counts the calls it makes (``calls`` and ``calls_by_method``), for tests and the bench.
  One count is one client method call; an artifact download may be several HTTP requests
  inside MLflow;
* reads runs in batches (:meth:`RegistryClient.get_runs`: one ``search_runs`` per hundred
  run ids) and remembers the small artifacts it has read (by location and path), so a
  sync's cost grows with models and batches, not with versions times three.

Over HTTP the session MLflow's REST layer uses carries TCP_NODELAY (see
``apps.registry.http_transport``): a request whose headers and body go out in two writes
must not wait for the server's delayed ACK on a kept-alive connection.

Credentials come from the environment and are read by MLflow itself on every request:
``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD`` (basic auth) or
``MLFLOW_TRACKING_TOKEN`` (bearer), plus ``MLFLOW_TRACKING_INSECURE_TLS``,
``MLFLOW_TRACKING_SERVER_CERT_PATH`` and ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` for TLS.
As everywhere in Slipway, the secrets may instead be given as a file
(``MLFLOW_TRACKING_PASSWORD_FILE``, ``MLFLOW_TRACKING_TOKEN_FILE``); the client then puts
the value in the environment only while its own calls run. Credentials never go into the
database or into error messages.

MLflow itself is imported lazily: importing it costs about two seconds, which every
``manage.py`` command would otherwise pay.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

logger = logging.getLogger(__name__)

SCORE_BASELINE_PATH = "slipway/score_baseline.json"
RELEASE_TAG = "slipway.release_id"

# MLflow's error codes that are a definitive answer about the request, not a failure to
# get one. Everything else (INTERNAL_ERROR for refused connections, timeouts, 5xx and
# non-JSON bodies; TEMPORARILY_UNAVAILABLE; PERMISSION_DENIED / UNAUTHENTICATED for bad
# credentials) means "could not ask", and the caller keeps its last good data.
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST"})
_REJECTED_CODES = frozenset({"INVALID_PARAMETER_VALUE", "INVALID_STATE", "RESOURCE_ALREADY_EXISTS"})

# user:password@ in URLs quoted by MLflow's error messages.
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)

# MLmodel files and score baselines are small; a huge one is refused unread.
_MAX_METADATA_BYTES = 4 * 1024 * 1024

# A model folder is tens of files; these bound a listing of a wrongly chosen root.
_MAX_ARTIFACT_FILES = 2_000
_MAX_ARTIFACT_DIRS = 200

# A server that keeps returning page tokens is broken; stop instead of looping forever.
_MAX_PAGES = 10_000

# Run ids per search_runs call: the filter stays a few kilobytes (a POST body) and the
# server's SQL an IN list of modest size.
RUN_IDS_PER_SEARCH = 100
# Experiment ids per search_runs call; a registry's runs rarely span more.
_EXPERIMENT_IDS_PER_SEARCH = 1_000
# Run ids MLflow makes are hex (uuid4().hex); anything else is read with get_run rather
# than quoted into a filter string.
_PLAIN_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")

# Environment variables the client sets around its calls (see the module docstring).
_ENV_LOCK = threading.RLock()
_SECRET_FILE_VARS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


class RegistryError(Exception):
    """Base of the registry client's errors; ``message`` is a sentence for people."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RegistryUnavailable(RegistryError):
    """MLflow could not be asked: down, too slow, not MLflow, or refused our credentials."""


class RegistryNotFound(RegistryError):
    """MLflow answered that the model, version, run or artifact does not exist."""


class RegistryRejected(RegistryError):
    """MLflow refused the request as invalid (bad alias name, wrong state...)."""


@dataclass(frozen=True)
class RegisteredModelInfo:
    name: str
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    description: str
    user_id: str
    current_stage: str
    source: str
    run_id: str
    run_link: str
    status: str
    status_message: str
    tags: dict[str, str]
    model_id: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    status: str
    artifact_uri: str
    metrics: dict[str, float]
    params: dict[str, str]
    user_id: str = ""  # the run's user (MLflow sets it from the tracking client's login)


@dataclass
class RegistryClient:
    """A bounded, counting client for one MLflow tracking URI.

    ``timeout`` is the per-request HTTP timeout in seconds (MLFLOW_TIMEOUT_SECONDS),
    ``max_retries`` MLflow's own retries per request (0: Slipway retries on its schedule
    instead of blocking a worker in MLflow's backoff), ``budget_seconds`` an optional
    ceiling for all calls made through this client: once spent, calls fail fast with
    RegistryUnavailable. Page sizes are attributes so tests can force several pages.
    """

    tracking_uri: str = ""
    timeout: int = 0
    max_retries: int = 0
    budget_seconds: float | None = None
    models_page_size: int = 500
    versions_page_size: int = 1000
    calls: int = field(default=0, init=False)
    calls_by_method: Counter = field(default_factory=Counter, init=False)
    _mlflow: Any = field(default=None, init=False, repr=False)
    _experiment_ids: list[str] | None = field(default=None, init=False, repr=False)
    # (location, path) -> text, or the RegistryNotFound MLflow answered: several versions
    # registered from one run share their artifacts, and one sync reads them once.
    _artifact_cache: dict = field(default_factory=dict, init=False, repr=False)
    _deadline: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tracking_uri = self.tracking_uri or settings.MLFLOW_TRACKING_URI
        self.timeout = int(self.timeout or settings.MLFLOW_TIMEOUT_SECONDS)
        if self.budget_seconds is not None:
            self._deadline = time.monotonic() + self.budget_seconds

    # --- plumbing ---------------------------------------------------------------------

    @property
    def display_uri(self) -> str:
        """The tracking URI without any user:password part, for messages and logs."""
        parts = urlsplit(self.tracking_uri)
        if parts.username or parts.password:
            netloc = parts.hostname or ""
            if parts.port:
                netloc = f"{netloc}:{parts.port}"
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return self.tracking_uri

    def _client(self):
        if self._mlflow is None:
            if self.tracking_uri.startswith("sqlite:///"):
                # MLflow would silently create an empty store at a wrong path, and an empty
                # registry would look like every model had been deleted.
                path = self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
                if path != ":memory:" and not Path(path).exists():
                    raise RegistryUnavailable(
                        f"There is no MLflow database at {self.display_uri}. "
                        "Check MLFLOW_TRACKING_URI."
                    )
            from mlflow import MlflowClient

            from apps.registry.http_transport import install_nodelay

            install_nodelay()
            self._mlflow = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._mlflow

    @contextmanager
    def _mlflow_env(self, timeout: int) -> Iterator[None]:
        values = {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0" if self.max_retries == 0 else "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
            # A Retry-After of an hour must not hold a worker past our own timeout.
            "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
        }
        for name in _SECRET_FILE_VARS:
            file_path = os.environ.get(f"{name}_FILE")
            if file_path and name not in os.environ:
                try:
                    values[name] = Path(file_path).read_text().strip()
                except OSError as exc:
                    raise RegistryUnavailable(f"{name}_FILE cannot be read: {exc}") from None
        with _ENV_LOCK:
            saved = {name: os.environ.get(name) for name in values}
            os.environ.update(values)
            try:
                yield
            finally:
                for name, old in saved.items():
                    if old is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = old

    def _call(self, method: str, fn: Callable[[], Any]) -> Any:
        """Run one MLflow call: count it, bound it, and translate what goes wrong."""
        timeout = self.timeout
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise RegistryUnavailable(
                    f"MLflow at {self.display_uri} is answering too slowly: the time allowed "
                    f"for this sync ({self.budget_seconds:.0f} s) is used up."
                )
            timeout = max(1, min(timeout, math.ceil(remaining)))
        self.calls += 1
        self.calls_by_method[method] += 1
        try:
            with self._mlflow_env(timeout):
                return fn()
        except (RegistryError, SoftTimeLimitExceeded):
            raise
        except Exception as exc:
            raise self._translate(method, exc, timeout) from exc

    def _translate(self, method: str, exc: Exception, timeout: int) -> RegistryError:
        code = getattr(exc, "error_code", None)
        detail = _short(_USERINFO.sub(r"\1", str(exc)))
        if code in _NOT_FOUND_CODES:
            return RegistryNotFound(detail)
        if code in _REJECTED_CODES:
            return RegistryRejected(f"MLflow refused {method}: {detail}")
        chain = _exception_chain(exc)
        where = f"MLflow at {self.display_uri}"
        if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in chain):
            message = f"{where} did not answer within {timeout} s."
        elif any(isinstance(e, ConnectionRefusedError) for e in chain):
            message = f"{where} refused the connection (is it running?)."
        elif any(
            isinstance(e, ConnectionError) or "ConnectionError" in type(e).__name__ for e in chain
        ):
            message = f"{where} cannot be reached: {detail}"
        elif code in {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"}:
            message = (
                f"{where} refused Slipway's credentials (MLFLOW_TRACKING_USERNAME/"
                f"PASSWORD or MLFLOW_TRACKING_TOKEN): {detail}"
            )
        elif "not in a valid JSON format" in str(exc) or "ParseError" in type(exc).__name__:
            message = f"{where} answered with something that is not the MLflow API: {detail}"
        else:
            message = f"{where} failed on {method}: {detail}"
        logger.warning("registry: %s (%s)", message, type(exc).__name__)
        return RegistryUnavailable(message)

    # --- reads ------------------------------------------------------------------------

    def list_registered_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, following page tokens to the end."""
        found: list[RegisteredModelInfo] = []
        for page in self._pages(
            "search_registered_models",
            lambda token: self._client().search_registered_models(
                max_results=self.models_page_size, page_token=token
            ),
        ):
            found.extend(_registered_model_info(rm) for rm in page)
        return found

    def get_registered_model(self, name: str) -> RegisteredModelInfo:
        rm = self._call("get_registered_model", lambda: self._client().get_registered_model(name))
        return _registered_model_info(rm)

    def list_model_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of one registered model (MLflow omits aliases here: they come from
        the registered model)."""
        filter_string = f"name = {_quote(name)}"
        found: list[ModelVersionInfo] = []
        for page in self._pages(
            "search_model_versions",
            lambda token: self._client().search_model_versions(
                filter_string=filter_string,
                max_results=self.versions_page_size,
                page_token=token,
            ),
        ):
            found.extend(_model_version_info(mv) for mv in page)
        wrong = {mv.name for mv in found} - {name}
        if wrong:
            raise RegistryUnavailable(
                f"MLflow answered a search for {name!r} with versions of {sorted(wrong)!r}."
            )
        return found

    def get_model_version(self, name: str, version: int) -> ModelVersionInfo:
        mv = self._call(
            "get_model_version", lambda: self._client().get_model_version(name, str(version))
        )
        return _model_version_info(mv)

    def get_run(self, run_id: str) -> RunInfo:
        run = self._call("get_run", lambda: self._client().get_run(run_id))
        return _run_info(run, run_id)

    def get_runs(self, run_ids) -> dict[str, RunInfo]:
        """The runs with these ids, by id, in batches: ``search_runs`` over every
        experiment with ``attributes.run_id IN (...)``, RUN_IDS_PER_SEARCH ids a call,
        instead of one ``get_run`` per version.

        A run the search does not return (deleted with its experiment, made in an
        experiment created after the experiments were listed, an id that cannot be
        quoted) is asked for with ``get_run``, so the answer for it is MLflow's own; a run
        MLflow says does not exist is left out of the result.
        """
        wanted = sorted({run_id for run_id in run_ids if run_id})
        found: dict[str, RunInfo] = {}
        plain = [run_id for run_id in wanted if _PLAIN_RUN_ID.match(run_id)]
        if plain:
            experiment_ids = self._all_experiment_ids()
            for ids in _chunks(plain, RUN_IDS_PER_SEARCH):
                for experiments in _chunks(experiment_ids, _EXPERIMENT_IDS_PER_SEARCH):
                    found.update(self._search_runs(experiments, ids))
        for run_id in wanted:
            if run_id not in found:
                with suppress(RegistryNotFound):
                    found[run_id] = self.get_run(run_id)
        return found

    def _search_runs(self, experiment_ids: list[str], run_ids: list[str]) -> dict[str, RunInfo]:
        from mlflow.entities import ViewType

        filter_string = "attributes.run_id IN ({})".format(
            ", ".join(f"'{run_id}'" for run_id in run_ids)
        )
        found: dict[str, RunInfo] = {}
        for page in self._pages(
            "search_runs",
            lambda token: self._client().search_runs(
                experiment_ids=experiment_ids,
                filter_string=filter_string,
                run_view_type=ViewType.ALL,
                max_results=len(run_ids),
                page_token=token,
            ),
        ):
            for run in page:
                info = _run_info(run, "")
                if info.run_id in run_ids:
                    found[info.run_id] = info
        return found

    def _all_experiment_ids(self) -> list[str]:
        """Every experiment id, deleted ones included (their runs may back versions),
        listed once per client."""
        if self._experiment_ids is None:
            from mlflow.entities import ViewType

            ids: list[str] = []
            for page in self._pages(
                "search_experiments",
                lambda token: self._client().search_experiments(
                    view_type=ViewType.ALL, max_results=1000, page_token=token
                ),
            ):
                ids.extend(str(e.experiment_id) for e in page)
            self._experiment_ids = ids
        return self._experiment_ids

    def read_run_json(self, run: RunInfo, path: str) -> Any:
        """Download one JSON artifact of a run; RegistryNotFound when it is not there.

        Read straight from the run's artifact location: MLflow's own
        ``download_artifacts(run_id, ...)`` looks the run up again (and again for logged
        models), several store round trips per file.
        """
        if run.artifact_uri:
            text = self._read_artifact("download_artifacts", run.artifact_uri, path)
        else:
            text = self._read_run_artifact(run.run_id, path)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RegistryRejected(f"{path} of run {run.run_id} is not JSON: {exc}") from exc

    def read_model_signature(
        self, name: str, version: int, source: str, *, run: RunInfo | None = None
    ) -> dict | None:
        """The signature in the version's MLmodel file, as ``{"inputs": [...], "outputs":
        [...]}`` (plus ``"params"`` when logged); None when the model has no signature.
        RegistryNotFound when there is no MLmodel file at the version's location.

        ``models:/`` sources are resolved with this client (MLflow's own resolution uses
        the process-wide registry URI); a ``runs:/`` source of the version's own run is read
        from that run's artifact location, falling back to MLflow's resolution (which also
        finds MLflow 3 logged models named after the path).
        """
        location = source
        if not location or location.startswith("models:/"):
            location = self._call(
                "get_model_version_download_uri",
                lambda: self._client().get_model_version_download_uri(name, str(version)),
            )
        text = None
        if run is not None and run.artifact_uri and location.startswith(f"runs:/{run.run_id}"):
            sub = location.removeprefix(f"runs:/{run.run_id}").strip("/")
            direct = f"{run.artifact_uri.rstrip('/')}/{sub}" if sub else run.artifact_uri
            try:
                text = self._read_artifact("download_mlmodel", direct, "MLmodel")
            except RegistryNotFound:
                text = None
        if text is None:
            text = self._read_artifact("download_mlmodel", location, "MLmodel")
        try:
            mlmodel = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RegistryRejected(
                f"the MLmodel file of {name} v{version} is not YAML: {exc}"
            ) from exc
        return parse_signature(mlmodel)

    def _read_artifact(self, method: str, location: str, path: str) -> str:
        """The text of ``path`` under an artifact location (file:, s3:, mlflow-artifacts:,
        runs:/...), downloaded to a temporary directory that is removed afterwards.
        Remembered for this client's lifetime (one sync): artifacts of a logged run do not
        change under a reader in the middle of a sync."""
        key = (location.rstrip("/"), path)
        cached = self._artifact_cache.get(key)
        if isinstance(cached, RegistryNotFound):
            raise RegistryNotFound(cached.message)
        if cached is not None:
            return cached
        try:
            text = self._download_artifact(method, location, path)
        except RegistryNotFound as exc:
            self._artifact_cache[key] = exc
            raise
        self._artifact_cache[key] = text
        return text

    def _download_artifact(self, method: str, location: str, path: str) -> str:

        def download():
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            repo = get_artifact_repository(
                location, tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
            with tempfile.TemporaryDirectory(prefix="slipway-mlflow-") as tmp:
                return _small_text(Path(repo.download_artifacts(path, tmp)))

        return self._call(method, download)

    def _read_run_artifact(self, run_id: str, path: str) -> str:
        def download():
            with tempfile.TemporaryDirectory(prefix="slipway-mlflow-") as tmp:
                return _small_text(Path(self._client().download_artifacts(run_id, path, tmp)))

        return self._call("download_artifacts", download)

    def list_artifact_files(
        self,
        name: str,
        version: int,
        source: str,
        *,
        max_files: int = _MAX_ARTIFACT_FILES,
        max_dirs: int = _MAX_ARTIFACT_DIRS,
    ) -> list[str]:
        """The files under a model version's artifact folder, as sorted ``/``-separated
        paths relative to it (what ``apps.gitops.artifacts.layout_problems`` checks).

        Lists folder by folder (one bounded call each); a folder with more than
        ``max_files`` files or ``max_dirs`` folders is RegistryRejected rather than walked
        for minutes: a model folder that big is a mistake worth reporting anyway.
        ``models:/`` sources are resolved with this client, like ``read_model_signature``.
        """
        location = source
        if not location or location.startswith("models:/"):
            location = self._call(
                "get_model_version_download_uri",
                lambda: self._client().get_model_version_download_uri(name, str(version)),
            )

        def repository():
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            return get_artifact_repository(
                location, tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )

        repo = self._call("list_artifacts", repository)
        files: list[str] = []
        pending: list[str | None] = [None]
        dirs = 0
        while pending:
            folder = pending.pop()
            dirs += 1
            if dirs > max_dirs:
                raise RegistryRejected(
                    f"{name} v{version} has more than {max_dirs} artifact folders; "
                    "not listed further."
                )
            for entry in self._call("list_artifacts", lambda f=folder: repo.list_artifacts(f)):
                # Entries come back relative to the repository root, whatever was asked.
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    files.append(entry.path)
            if len(files) > max_files:
                raise RegistryRejected(
                    f"{name} v{version} has more than {max_files} artifact files; "
                    "not listed further."
                )
        return sorted(files)

    # --- writes -----------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(
            "set_registered_model_alias",
            lambda: self._client().set_registered_model_alias(name, alias, str(version)),
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(
            "set_model_version_tag",
            lambda: self._client().set_model_version_tag(name, str(version), key, value),
        )

    # --- helpers ----------------------------------------------------------------------

    def _pages(self, method: str, fetch: Callable[[str | None], Any]) -> Iterator[list]:
        token: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = self._call(method, lambda t=token: fetch(t))
            yield list(page)
            token = getattr(page, "token", None) or None
            if token is None:
                return
            if token in seen:
                raise RegistryUnavailable(f"MLflow repeated a page token in {method}.")
            seen.add(token)
        raise RegistryUnavailable(f"MLflow returned more than {_MAX_PAGES} pages in {method}.")


def _run_info(run, run_id: str) -> RunInfo:
    try:
        return RunInfo(
            run_id=str(run.info.run_id),
            experiment_id=str(run.info.experiment_id or ""),
            status=str(run.info.status or ""),
            artifact_uri=_text(run.info.artifact_uri),
            metrics={
                str(k): float(v)
                for k, v in dict(run.data.metrics).items()
                if v is not None and math.isfinite(float(v))
            },
            params={str(k): str(v) for k, v in dict(run.data.params).items()},
            user_id=_text(getattr(run.info, "user_id", "")),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise RegistryUnavailable(
            f"MLflow returned a malformed run {run_id or '(in a search)'}: {exc}"
        ) from exc


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _small_text(path: Path) -> str:
    """A downloaded metadata file's text; anything this big is not an MLmodel or a
    baseline, and is refused rather than parsed."""
    if path.stat().st_size > _MAX_METADATA_BYTES:
        raise RegistryRejected(f"{path.name} is larger than {_MAX_METADATA_BYTES} bytes")
    return path.read_text(errors="replace")


def parse_signature(mlmodel: Any) -> dict | None:
    """Pull the signature out of a parsed MLmodel document (its parts are JSON strings)."""
    if not isinstance(mlmodel, dict):
        raise RegistryRejected("the MLmodel file is not a mapping")
    raw = mlmodel.get("signature")
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise RegistryRejected("the MLmodel signature is not a mapping")
    signature: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = raw.get(part)
        if value in (None, ""):
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise RegistryRejected(f"the MLmodel signature {part} are not JSON: {exc}") from exc
        if not isinstance(value, list):
            raise RegistryRejected(f"the MLmodel signature {part} are not a list")
        signature[part] = value
    signature.setdefault("inputs", [])
    signature.setdefault("outputs", [])
    return signature


def _registered_model_info(rm) -> RegisteredModelInfo:
    try:
        aliases = getattr(rm, "aliases", None) or {}
        if isinstance(aliases, list):  # some entity versions give RegisteredModelAlias objects
            aliases = {a.alias: a.version for a in aliases}
        return RegisteredModelInfo(
            name=_text(rm.name, required=True),
            creation_timestamp=_millis(rm.creation_timestamp),
            last_updated_timestamp=_millis(rm.last_updated_timestamp),
            description=_text(rm.description),
            tags={str(k): str(v) for k, v in dict(rm.tags or {}).items()},
            aliases={str(k): int(v) for k, v in dict(aliases).items()},
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise RegistryUnavailable(f"MLflow returned a malformed registered model: {exc}") from exc


def _model_version_info(mv) -> ModelVersionInfo:
    try:
        return ModelVersionInfo(
            name=_text(mv.name, required=True),
            version=int(mv.version),
            creation_timestamp=_millis(mv.creation_timestamp),
            last_updated_timestamp=_millis(mv.last_updated_timestamp),
            description=_text(mv.description),
            user_id=_text(getattr(mv, "user_id", "")),
            current_stage=_text(getattr(mv, "current_stage", "")),
            source=_text(mv.source),
            run_id=_text(mv.run_id),
            run_link=_text(getattr(mv, "run_link", "")),
            status=_text(mv.status, required=True),
            status_message=_text(getattr(mv, "status_message", "")),
            tags={str(k): str(v) for k, v in dict(mv.tags or {}).items()},
            model_id=_text(getattr(mv, "model_id", "")),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise RegistryUnavailable(f"MLflow returned a malformed model version: {exc}") from exc


def _text(value, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise ValueError("a required field is missing")
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    if required and not value:
        raise ValueError("a required field is empty")
    return value


def _millis(value) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def _quote(name: str) -> str:
    """Quote a model name for an MLflow filter string (which has no escape for quotes)."""
    if "'" not in name:
        return f"'{name}'"
    if '"' not in name:
        return f'"{name}"'
    raise RegistryRejected(
        f"The model name {name!r} contains both kinds of quote, which MLflow's search "
        "cannot express; rename the registered model."
    )


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 20:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
