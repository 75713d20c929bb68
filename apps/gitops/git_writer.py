"""Commit rendered manifests to the GitOps repository, once per release.

One persistent working clone per worker (no clone per commit). Every git call is a
plain ``git`` subprocess with a timeout, started in its own process group so a timeout
kills git's helpers too; nothing stays running between calls (GitPython's persistent
``cat-file`` processes are exactly what a long-running worker must not accumulate).

For each release, under the repository lock: make sure no commit carrying this
``Release-Id`` trailer is on the remote branch (a redelivered task finds it and stops),
build the commit on the branch tip with one ``git fast-import`` (new blobs, trees and the
commit with its trailers, no work tree touched: the clone's checkout is never used), and
push that commit. A rejected push (someone else pushed first, or a hook said no) starts
again from a fetch after a capped, jittered backoff; nothing is ever force-pushed, so
outside commits are kept. A commit thus costs two git processes (fast-import, push)
where ``git add/commit/push`` costs three.

When to fetch, and why skipping it keeps exactly-once. The process remembers, per clone,
the remote tip it last *knew* (fetched, or its own accepted push) and the ``Release-Id``
trailers of that tip's recent history (every commit of the last few days at the last
fetch, plus each commit it pushed since). It fetches and rescans only when it knows no
tip: its first commit (so a worker restarted after a kill between push and recording
fetches and finds its trailer), after a rejected push, and after any error mid-attempt
(a push that timed out may have landed). Otherwise it builds on the known tip without
fetching, and:

- a commit with this trailer *in* the known history is found in memory (the trailer
  cannot be older than the release's approval, ``since``; one older than the scanned
  window, or a call without ``since``, is looked up with ``git log`` on the known tip);
- a commit with this trailer made *after* our knowledge cannot have been accepted by the
  remote without moving its branch past our tip: then our push is not a fast-forward,
  is rejected, and the retry fetches and finds it. If the push is accepted, the remote
  branch was our tip (or older), so no such commit was on it.

Worker processes of one host share the clone: before building on its remembered tip, a
process reads the clone's remote-tracking ref (a file, no process), which a sibling's
push or fetch moved, and fetches when it differs. A push refused on a remembered tip
(another host pushed) is retried at once (fetch, look up, build, push)
under the same lock hold, without a backoff: with several worker processes, the usual
reason is only that another worker pushed since, not contention worth waiting out.

State is per process and keyed by clone; it lives under the clone's lock, and anything
unexpected (an exception, a rejection) forgets it, which only costs the next call a fetch.

Credentials: an SSH key file (``GIT_SSH_COMMAND``) or an HTTPS token sent as an
``http.<url>.extraHeader`` through ``GIT_CONFIG_*`` environment variables — never in the
URL, the command line or the working clone's config — and every message is redacted.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from apps.core.backoff import backoff_delay
from apps.core.failpoints import failpoint
from apps.core.redact import Redactor, redact_url
from apps.gitops.errors import (
    GitCommandError,
    GitOpsError,
    GitPushRejected,
    GitRemoteUnavailable,
    RepositoryLockTimeout,
    UnsafePathError,
    UnsafeRemoteError,
)
from apps.gitops.locks import file_lock, local_lock, repository_lock
from apps.gitops.names import is_plain
from apps.gitops.paths import check_file_name, release_folder

logger = logging.getLogger("apps.gitops.git")

REQUIRED_TRAILER = "Release-Id"
# A release that reaches the repository in several commits (the steps of a progressive
# rollout) carries its Release-Id on each; this trailer names the one commit, so each
# step is deduplicated on its own key (``<release id>/step-<n>``, ``<release id>/abort``).
STEP_KEY_TRAILER = "Step-Key"
_STEP_KEY = re.compile(r"[0-9a-f-]{36}/[a-z0-9-]{1,32}")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s]+")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_TRAILER_KEY = re.compile(r"[A-Z][A-Za-z0-9-]{0,62}")
_SHA = re.compile(r"[0-9a-f]{7,64}")
# Indirection so tests can record backoff sleeps without slowing down.
_sleep = time.sleep
# How much older than ``since`` a commit may look and still be searched: clocks differ.
_SINCE_MARGIN = timedelta(days=1)
# How far back a fetch rescans Release-Id trailers into memory: releases approved up to
# (window - margin) before the last fetch are then looked up without spawning git.
_SCAN_WINDOW = timedelta(days=3)
# Trailers remembered beyond this many pushes without a fetch: refetch, rescan, shrink.
_MAX_KNOWN = 10_000


@dataclass
class _TipState:
    """What this process knows of one clone's remote branch; see the module docstring.

    ``base`` is the tip to build on: a commit id, "" for a remote without the branch
    (the next commit is a root), None when unknown (fetch first). ``known`` maps the
    Release-Id of every commit of ``base``'s history committed at or after
    ``known_since`` to its (oldest) commit id.
    """

    prepared: bool = False
    base: str | None = None
    known: dict[str, str] = field(default_factory=dict)
    known_since: datetime | None = None
    # Folders whose parents were checked to be trees (not links) in ``base``'s history.
    checked_parents: set[str] = field(default_factory=set)

    def forget(self) -> None:
        self.base = None
        self.known = {}
        self.known_since = None
        self.checked_parents = set()

    def covers(self, since: datetime | None) -> bool:
        """Does ``known`` hold every commit that could carry a release approved at ``since``?"""
        if self.base is None or since is None or self.known_since is None:
            return False
        if since.tzinfo is None:
            return False
        return since - _SINCE_MARGIN >= self.known_since


_states: dict[tuple[str, str, str], _TipState] = {}
_states_guard = threading.Lock()


def _state_for(remote: GitRemote) -> _TipState:
    key = (str(remote.workdir.resolve()), remote.url, remote.branch)
    with _states_guard:
        return _states.setdefault(key, _TipState())


def _forget_all_in_child() -> None:
    # A forked worker starts knowing nothing: the parent may push after the fork.
    _states.clear()


os.register_at_fork(after_in_child=_forget_all_in_child)


def check_remote_url(url: object) -> str:
    """Return ``url`` if Slipway may talk to it, else raise ``UnsafeRemoteError``.

    Allowed: https://, ssh://, git://, file:// and scp-like ``user@host:path``. Refused:
    transport helpers (``ext::``, ``fd::`` run commands), plain http (a token would
    travel in clear), credentials in the URL, and anything git could read as an option.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeRemoteError("The GitOps repository URL is empty.")
    shown = redact_url(url) if is_plain(url) else repr(url)
    if not is_plain(url) or any(ch.isspace() for ch in url) or url.startswith("-"):
        raise UnsafeRemoteError(f"The GitOps repository URL {shown} contains unsafe characters.")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*::", url):
        raise UnsafeRemoteError(
            f"{shown} uses a git transport helper ('::'), which can run commands; refused."
        )
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme:
        if scheme not in ("https", "ssh", "git", "file"):
            raise UnsafeRemoteError(
                f"{shown} uses {scheme}://, which Slipway does not allow; use https://, "
                "ssh://, git://, file:// or user@host:path."
            )
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise UnsafeRemoteError(f"{shown} is not a valid URL.") from None
        if parts.password is not None or (scheme == "https" and parts.username):
            raise UnsafeRemoteError(
                f"{shown} carries credentials; put the token in GITOPS_HTTPS_TOKEN "
                "(or GITOPS_HTTPS_TOKEN_FILE) instead."
            )
        if scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise UnsafeRemoteError(f"{shown} must be file:///absolute/path.")
        elif not parts.hostname or parts.hostname.startswith("-"):
            raise UnsafeRemoteError(f"{shown} has no valid host name.")
        return url
    if _SCP_LIKE.fullmatch(url):
        return url
    raise UnsafeRemoteError(
        f"{shown} is not a URL Slipway accepts; use https://, ssh://, git://, file:// or "
        "user@host:path."
    )


@dataclass(frozen=True)
class GitRemote:
    """Where and how to push. Built from settings by ``GitWriter.from_settings``."""

    url: str
    branch: str
    workdir: Path
    author_name: str
    author_email: str
    ssh_key_file: str = ""
    https_token: str = field(default="", repr=False)
    timeout: int = 60  # seconds, for each git command
    max_attempts: int = 8  # pushes per commit_release call before GitPushRejected
    ssh_known_hosts_file: str = ""  # pinned host keys; empty: ssh's usual known_hosts
    https_username: str = "x-access-token"  # GitHub's; GitLab accepts any user name
    backoff_base: float = 0.5  # seconds before the second attempt; doubles each time
    backoff_cap: float = 10.0

    def __post_init__(self) -> None:
        check_remote_url(self.url)
        if (
            not _BRANCH.fullmatch(self.branch)
            or ".." in self.branch
            or self.branch.endswith((".lock", "/", "."))
        ):
            raise GitOpsError(f"{self.branch!r} is not a branch name Slipway will push to.")
        for what, value in (("author name", self.author_name), ("author email", self.author_email)):
            if not value or not is_plain(value) or any(ch in value for ch in "<>"):
                raise GitOpsError(f"The git {what} must be one line of text without '<' or '>'.")
        if self.max_attempts < 1 or self.timeout < 1:
            raise GitOpsError("max_attempts and timeout must be at least 1.")
        object.__setattr__(self, "workdir", Path(self.workdir))


@dataclass(frozen=True)
class CommitOutcome:
    sha: str
    created: bool  # False: a commit with this Release-Id was already on the remote
    push_attempts: int  # pushes made by this call (0 when the commit already existed)


@dataclass(frozen=True)
class FolderChange:
    """The newest commit that changed a service folder (``GitWriter.folder_last_change``)."""

    sha: str
    author: str
    committed_at: str  # ISO 8601, as git prints it
    subject: str


@dataclass(frozen=True)
class RemoteProbe:
    """What ``GitWriter.ls_remote`` saw: git's exit status (0: the branch exists, 2: the
    remote answered but has no such branch) and its redacted stderr."""

    returncode: int
    stderr: str


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: bytes
    stderr: str  # redacted

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


class GitWriter:
    """Writes release folders to one GitOps repository; see the module docstring."""

    def __init__(
        self, remote: GitRemote, *, lock: Callable[[], AbstractContextManager] | None = None
    ):
        self.remote = remote
        self._lock = lock or (
            lambda: repository_lock(
                remote.url, lock_dir=remote.workdir.parent, timeout=remote.timeout * 10
            )
        )
        basic = ""
        if remote.https_token:
            basic = base64.b64encode(
                f"{remote.https_username}:{remote.https_token}".encode()
            ).decode("ascii")
        self._redact = Redactor([remote.https_token, basic])
        self._env = self._build_env(basic)
        self._fetched = False
        self._closed = False
        self._holding = False

    @classmethod
    def from_settings(cls) -> GitWriter:
        from django.conf import settings

        if not settings.GITOPS_REPO_URL:
            raise GitOpsError("GITOPS_REPO_URL is not set: Slipway has no GitOps repository.")
        remote = GitRemote(
            url=settings.GITOPS_REPO_URL,
            branch=settings.GITOPS_BRANCH,
            workdir=Path(settings.GITOPS_WORKDIR),
            author_name=settings.GITOPS_AUTHOR_NAME,
            author_email=settings.GITOPS_AUTHOR_EMAIL,
            ssh_key_file=settings.GITOPS_SSH_KEY_FILE,
            https_token=settings.GITOPS_HTTPS_TOKEN,
            timeout=settings.GITOPS_TIMEOUT_SECONDS,
            max_attempts=settings.GITOPS_PUSH_MAX_ATTEMPTS,
            ssh_known_hosts_file=settings.GITOPS_SSH_KNOWN_HOSTS_FILE,
        )
        return cls(remote)

    @contextlib.contextmanager
    def hold_lock(self) -> Iterator[GitWriter]:
        """Hold the repository writer lock across several commits, so a caller draining
        a queue commits it in order with no other writer in between."""
        with self._lock():
            self._holding = True
            try:
                yield self
            finally:
                self._holding = False

    def __enter__(self) -> GitWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays running between calls; this only marks the writer unusable."""
        self._closed = True

    # --- public operations ------------------------------------------------------------
    def current_files(
        self, environment: str, service: str, *, fetch: bool = True
    ) -> dict[str, str]:
        """The files in ``environments/<env>/<service>/`` on the remote branch.

        With ``fetch=False``, as of the last fetch (no network; for pages that must not
        wait on the git host).
        """
        folder = release_folder(environment, service)
        with self._workdir_lock():
            self._prepare()
            exists = self._fetch() if fetch else self._remote_ref_exists()
            if not exists:
                return {}
            return self._read_folder(folder)

    def find_release_commit(
        self, release_id: str, *, since: datetime | None = None, fetch: bool = True
    ) -> str | None:
        """The commit on the remote branch whose ``Release-Id`` trailer is ``release_id``.

        ``since`` (e.g. when the release was approved) bounds the search to recent
        history, which keeps it fast on repositories with long histories.
        """
        release_id = _check_release_id(release_id)
        with self._workdir_lock():
            self._prepare()
            exists = self._fetch() if fetch else self._remote_ref_exists()
            return self._find_release(release_id, since) if exists else None

    def commit_release(
        self,
        *,
        environment: str,
        service: str,
        files: Mapping[str, str],
        message: str,
        trailers: Mapping[str, str | Sequence[str]],
        since: datetime | None = None,
        step_key: str | None = None,
    ) -> CommitOutcome:
        """Make (or find) this release's commit on the remote branch; see the module doc.

        ``step_key`` (``<release id>/step-2``): the release is committed in several
        commits, and this one is found (or made) by its ``Step-Key`` trailer instead of
        the Release-Id, which every step of the release carries.

        Raises ``GitRemoteUnavailable`` when the remote cannot be reached and
        ``GitPushRejected`` when every push attempt was rejected (both retryable).
        """
        self._check_open()
        folder = release_folder(environment, service)
        files = _check_files(files)
        release_id = _check_release_id(_single(trailers.get(REQUIRED_TRAILER)))
        all_trailers = {**trailers, REQUIRED_TRAILER: release_id}
        if step_key is not None:
            step_key = _check_step_key(step_key, release_id)
            all_trailers[STEP_KEY_TRAILER] = step_key
        body = _commit_message(message, all_trailers)
        key, key_trailer = (
            (step_key, STEP_KEY_TRAILER) if step_key else (release_id, REQUIRED_TRAILER)
        )
        attempts = 0
        rejection = ""
        for attempt in range(1, self.remote.max_attempts + 1):
            writer_lock = contextlib.nullcontext() if self._holding else self._lock()
            with writer_lock, self._workdir_lock():
                self._prepare()
                state = _state_for(self.remote)
                try:
                    for _ in range(2):
                        if state.base and self._clone_saw_newer_tip(state.base):
                            state.forget()
                        learned = state.base is None
                        if learned:
                            self._learn_tip(state)
                        found = self._known_release(state, key, since, key_trailer)
                        if found:
                            logger.info(
                                "Release %s is already commit %s on the remote; not "
                                "committing again.",
                                key,
                                found,
                            )
                            return CommitOutcome(sha=found, created=False, push_attempts=attempts)
                        self._check_parents(state, folder)
                        sha = self._commit(state.base, folder, files, body)
                        failpoint("deploy.after_commit")  # crash tests: committed, not pushed
                        attempts += 1
                        rejection = self._push(sha)
                        if rejection is None:
                            break
                        state.forget()  # the remote moved on (or refused): fetch, look again
                        if learned:
                            break  # refused on a fresh tip: contention or a hook, back off
                        # Refused on a remembered tip: most likely another worker pushed
                        # since. That is no contention to wait out: fetch and retry now.
                except BaseException:
                    state.forget()  # a push that failed oddly may have landed: refetch
                    raise
                if rejection is None:
                    state.base = sha
                    if step_key is None:
                        # A step's commit is not the release's own (see _learn_tip).
                        state.known.setdefault(release_id, sha)
                    state.known[key] = sha
                    if len(state.known) > _MAX_KNOWN:
                        state.forget()
                    logger.info("Pushed release %s as %s (attempt %d).", release_id, sha, attempt)
                    return CommitOutcome(sha=sha, created=True, push_attempts=attempts)
            logger.warning(
                "Push of release %s rejected (attempt %d of %d): %s",
                release_id,
                attempt,
                self.remote.max_attempts,
                rejection,
            )
            if attempt < self.remote.max_attempts:
                # Outside the locks: other releases (and readers) are not held up while
                # this one waits out a busy or frozen remote.
                _sleep(self._backoff(attempt))
        raise GitPushRejected(
            f"{redact_url(self.remote.url)} rejected the push {attempts} times; last reason: "
            f"{rejection}"
        )

    def ls_remote(self, *, timeout: float | None = None) -> RemoteProbe:
        """``git ls-remote`` of the branch: is the remote reachable with these credentials,
        and does the branch exist? For readiness probes, which must not touch the lock or
        the working clone: it runs from "/", so a process that never cloned (web) can ask.
        Raises GitRemoteUnavailable on timeout (message redacted)."""
        probe = GitWriter(replace(self.remote, workdir=Path("/")), lock=self._lock)
        result = probe._git(
            "ls-remote",
            "--heads",
            "--exit-code",
            "--",
            self.remote.url,
            f"refs/heads/{self.remote.branch}",
            check=False,
            remote=True,
            timeout=timeout,
        )
        return RemoteProbe(returncode=result.returncode, stderr=result.stderr)

    def is_ancestor(self, commit: str, descendant: str) -> bool:
        """True when ``commit`` is ``descendant`` or one of its ancestors.

        Fetches once if ``descendant`` is not known locally yet (Argo CD may have synced
        a newer commit than this clone has seen).
        """
        for value in (commit, descendant):
            if not isinstance(value, str) or not _SHA.fullmatch(value):
                raise GitOpsError(f"{value!r} is not a commit id.")
        with self._workdir_lock():
            self._prepare()
            for fetch_first in (False, True):
                if fetch_first:
                    self._fetch()
                result = self._git("merge-base", "--is-ancestor", commit, descendant, check=False)
                if result.returncode in (0, 1):
                    return result.returncode == 0
            return False

    def folder_files(self, revision: str, *, environment: str, service: str) -> dict[str, str]:
        """Every entry under ``environments/<env>/<service>/`` at ``revision``, keyed by
        its path inside the folder: what Argo CD syncs from there, subfolders included.

        For checking the folder against what was approved, so nothing is left out: a
        symbolic link or submodule is listed with a marker text instead of its contents
        (it can never equal an approved file). Fetches once if ``revision`` is not known
        locally yet; raises GitOpsError if the remote does not have it either. Three git
        processes at most (rev-parse, ls-tree, one batch cat-file), none left running.
        """
        if not isinstance(revision, str) or not _SHA.fullmatch(revision):
            raise GitOpsError(f"{revision!r} is not a commit id.")
        folder = release_folder(environment, service)
        with self._workdir_lock():
            self._prepare()
            self._require_commit(revision)
            return self._read_tree(revision, folder, recursive=True)

    def folder_last_change(
        self, revision: str, *, environment: str, service: str
    ) -> FolderChange | None:
        """The newest commit up to ``revision`` that changed the service folder: who
        brought the folder to what it is at ``revision``. None if no commit touched it."""
        if not isinstance(revision, str) or not _SHA.fullmatch(revision):
            raise GitOpsError(f"{revision!r} is not a commit id.")
        folder = release_folder(environment, service)
        with self._workdir_lock():
            self._prepare()
            self._require_commit(revision)
            out = self._git(
                "log", "-1", "--format=%H%x00%an <%ae>%x00%cI%x00%s", revision, "--", f"{folder}/"
            ).text.strip()
        if not out:
            return None
        sha, author, when, subject = [*out.split("\x00"), "", "", ""][:4]
        return FolderChange(sha=sha, author=author, committed_at=when, subject=subject)

    # --- steps ------------------------------------------------------------------------
    def _require_commit(self, revision: str) -> None:
        """Make sure ``revision`` is in the clone, fetching once if it is not."""
        for fetch_first in (False, True):
            if fetch_first:
                self._fetch()
            probe = self._git("cat-file", "-e", f"{revision}^{{commit}}", check=False)
            if probe.returncode == 0:
                return
        raise GitOpsError(f"Commit {revision[:12]} is not on {redact_url(self.remote.url)}.")

    def _prepare(self) -> None:
        """Create the working clone once (git init + origin), and keep origin's URL right."""
        self._check_open()
        state = _state_for(self.remote)
        workdir = self.remote.workdir
        if state.prepared and (workdir / ".git").is_dir():
            return
        state.forget()
        if not (workdir / ".git").is_dir():
            workdir.mkdir(parents=True, exist_ok=True)
            if any(workdir.iterdir()):
                raise GitCommandError(
                    f"{workdir} exists and is not a git working clone; refusing to use it."
                )
            self._git("init", "-q", "-b", self.remote.branch)
        current = self._git("config", "--get", "remote.origin.url", check=False).text.strip()
        if not current:
            self._git("remote", "add", "origin", self.remote.url)
        elif current != self.remote.url:
            self._git("remote", "set-url", "origin", self.remote.url)
        state.prepared = True

    def _fetch(self) -> bool:
        """Fetch the branch; False when the remote has no such branch yet (a new repo)."""
        branch = self.remote.branch
        result = self._git(
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
            f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
            check=False,
            remote=True,
            # The first fetch of a new clone brings the whole history: give it longer.
            timeout=self.remote.timeout * (1 if self._fetched else 10),
        )
        if result.returncode == 0:
            self._fetched = True
            return True
        if "couldn't find remote ref" in result.stderr:
            self._git("update-ref", "-d", f"refs/remotes/origin/{branch}", check=False)
            return False
        raise GitRemoteUnavailable(
            f"Cannot fetch from {redact_url(self.remote.url)}: {_last_line(result.stderr)}"
        )

    def _remote_ref_exists(self) -> bool:
        ref = f"refs/remotes/origin/{self.remote.branch}"
        return self._git("rev-parse", "-q", "--verify", ref, check=False).returncode == 0

    def _find_release(
        self,
        release_id: str,
        since: datetime | None,
        rev: str | None = None,
        trailer: str = REQUIRED_TRAILER,
    ) -> str | None:
        args = [
            "log",
            "-F",
            f"--grep={trailer}: {release_id}",
            f"--format=%H%x00%(trailers:key={trailer},valueonly,separator=%x01)"
            f"%x00%(trailers:key={STEP_KEY_TRAILER},valueonly,separator=%x01)",
        ]
        if since is not None:
            args.append(f"--since={(since - _SINCE_MARGIN).isoformat()}")
        args += [rev or f"refs/remotes/origin/{self.remote.branch}", "--"]
        found = None
        for line in self._git(*args).text.splitlines():
            sha, _, rest = line.partition("\x00")
            values, _, step_keys = rest.partition("\x00")
            if trailer == REQUIRED_TRAILER and step_keys.strip():
                # A step of the release (a shadow evaluation of it before approval, a
                # rollout step) carries its Release-Id too, but is not its own commit.
                continue
            if release_id in (v.strip() for v in values.split("\x01")):
                found = sha  # log is newest first: keep the oldest, the original commit
        return found

    def _learn_tip(self, state: _TipState) -> None:
        """Fetch, then remember the tip and the recent history's Release-Id trailers."""
        state.forget()
        if not self._fetch():
            state.base, state.known_since = "", datetime.min.replace(tzinfo=UTC)
            return
        ref = f"refs/remotes/origin/{self.remote.branch}"
        tip = self._git("rev-parse", "--verify", f"{ref}^{{commit}}").text.strip()
        scanned_since = datetime.now(UTC) - _SCAN_WINDOW
        # Both keys in one map: a Release-Id is a bare UUID, a Step-Key has a slash.
        log = self._git(
            "log",
            f"--format=%H%x00%(trailers:key={REQUIRED_TRAILER},key={STEP_KEY_TRAILER},"
            "valueonly,separator=%x01)",
            f"--since={scanned_since.isoformat()}",
            tip,
            "--",
        ).text
        known: dict[str, str] = {}
        for line in log.splitlines():
            sha, _, values = line.partition("\x00")
            found = [v.strip() for v in values.split("\x01") if v.strip()]
            if any("/" in v for v in found):
                # A step's commit: known by its Step-Key only. Its Release-Id is not the
                # release's own commit (a shadow evaluation of a release carries it
                # before the release itself is ever committed).
                found = [v for v in found if "/" in v]
            for value in found:
                known[value] = sha  # newest first: the oldest one wins
        state.base, state.known, state.known_since = tip, known, scanned_since

    def _clone_saw_newer_tip(self, base: str) -> bool:
        """Did another process sharing this clone (a prefork sibling) push or fetch since?

        Its push moved the clone's remote-tracking ref, so our remembered tip is stale:
        fetch now rather than build a commit the remote will refuse. Read as a file (a
        loose ref, which every fetch and push writes) to spare a process; a packed or
        unreadable ref says nothing and the push's fast-forward check still decides.
        """
        loose = self.remote.workdir / ".git" / "refs" / "remotes" / "origin" / self.remote.branch
        try:
            seen = loose.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return False
        return bool(_SHA.fullmatch(seen)) and seen != base

    def _known_release(
        self,
        state: _TipState,
        release_id: str,
        since: datetime | None,
        trailer: str = REQUIRED_TRAILER,
    ) -> str | None:
        """The commit carrying ``release_id`` (or a step key) in the known tip's history."""
        if not state.base:
            return None  # the remote has no branch yet: nothing to find
        if state.covers(since):
            return state.known.get(release_id)
        found = self._find_release(release_id, since, state.base, trailer)
        if found:
            state.known[release_id] = found
        return found

    def _check_parents(self, state: _TipState, folder: PurePosixPath) -> None:
        """Refuse to build on a tip where a parent of ``folder`` is a file or a link.

        fast-import would silently turn such an entry into a folder; a committed link
        ``environments/prod -> elsewhere`` must stop the deploy, not be overwritten.
        Checked once per tip learned: our own commits only ever add folders.
        """
        parents = [str(p) for p in reversed(folder.parents) if str(p) != "."]
        if not state.base or not parents or str(folder) in state.checked_parents:
            return
        query = "".join(f"{state.base}:{path}\n" for path in parents).encode()
        lines = self._git("cat-file", "--batch-check", input=query).text.splitlines()
        for path, line in zip(parents, lines, strict=True):
            kind = line.split()[1] if len(line.split()) == 3 else "missing"
            if kind not in ("tree", "missing"):
                raise UnsafePathError(
                    f"{path} is a file or symbolic link on the branch, not a folder; "
                    "refusing to write under it."
                )
        state.checked_parents.add(str(folder))

    def _commit(self, base: str, folder: PurePosixPath, files: Mapping[str, str], body: str) -> str:
        """Build the commit (blobs, trees, commit) on ``base`` with one fast-import.

        The folder is replaced by exactly ``files`` (stale files go); everything else
        is ``base``'s tree untouched. Identical files still make a commit with its own
        trailer, which is how a redelivered task recognises the work as done. The local
        branch is moved to the commit (``--force``: it may not descend from the last
        one), so the clone shows what was last built.
        """
        ident = f"{self.remote.author_name} <{self.remote.author_email}> now".encode()
        stream = [
            f"commit refs/heads/{self.remote.branch}\nmark :1\n".encode(),
            b"author " + ident + b"\n",
            b"committer " + ident + b"\n",
            *_data(_cleanup_whitespace(body).encode("utf-8")),
        ]
        if base:
            stream.append(f"from {base}\n".encode())
        stream.append(f"D {_fast_import_path(folder)}\n".encode())
        for name, text in sorted(files.items()):
            stream.append(f"M 100644 inline {_fast_import_path(folder / name)}\n".encode())
            stream += _data(text.encode("utf-8"))
        stream.append(b"\nget-mark :1\n")
        out = self._git(
            "fast-import", "--quiet", "--force", "--date-format=now", input=b"".join(stream)
        )
        sha = out.text.strip()
        if not _SHA.fullmatch(sha):
            raise GitCommandError(f"git fast-import did not report the commit: {sha[:80]!r}")
        return sha

    def _push(self, sha: str) -> str | None:
        """Push ``sha`` to the branch; None on success, the rejection reason otherwise."""
        result = self._git(
            "push",
            "--porcelain",
            "origin",
            f"{sha}:refs/heads/{self.remote.branch}",
            check=False,
            remote=True,
        )
        if result.returncode == 0:
            return None
        rejected = [line for line in self._redact(result.text).splitlines() if line.startswith("!")]
        if rejected:
            reason = rejected[0].split("\t")[-1]
            hook_said = [
                line.removeprefix("remote:").strip()
                for line in result.stderr.splitlines()
                if line.startswith("remote:")
            ]
            hook_said = [line for line in hook_said if line]
            return reason + (f" ({' '.join(hook_said)[:300]})" if hook_said else "")
        raise GitRemoteUnavailable(
            f"Cannot push to {redact_url(self.remote.url)}: {_last_line(result.stderr)}"
        )

    def _read_folder(self, folder: PurePosixPath) -> dict[str, str]:
        return self._read_tree(f"refs/remotes/origin/{self.remote.branch}", folder)

    def _read_tree(
        self, ref: str, folder: PurePosixPath, *, recursive: bool = False
    ) -> dict[str, str]:
        """The regular files of ``folder`` at ``ref`` (top level only unless
        ``recursive``). Recursive reads also list links, submodules and (never in a
        release) nested files, so a check against approved files misses nothing."""
        args = ["ls-tree", "-z", *(["-r"] if recursive else []), ref, "--", f"{folder}/"]
        listing = self._git(*args).stdout
        blobs: list[tuple[str, str]] = []
        files: dict[str, str] = {}
        for entry in listing.split(b"\x00"):
            if not entry:
                continue
            meta, _, path = entry.decode("utf-8", errors="replace").partition("\t")
            mode, kind, object_id = meta.split()
            name = PurePosixPath(path).relative_to(folder).as_posix()
            if kind == "blob" and mode in ("100644", "100755"):
                blobs.append((name, object_id))
            elif recursive:
                files[name] = f"<{kind} {mode} {object_id}>"
        if not blobs:
            return files
        # One cat-file for all blobs; it exits when its input closes.
        batch = self._git(
            "cat-file", "--batch", input="".join(f"{oid}\n" for _, oid in blobs).encode()
        ).stdout
        position = 0
        for name, _ in blobs:
            header_end = batch.index(b"\n", position)
            size = int(batch[position:header_end].split()[2])
            start = header_end + 1
            files[name] = batch[start : start + size].decode("utf-8", errors="replace")
            position = start + size + 1
        return files

    # --- plumbing ---------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        # Jitter, so writers rejected together do not retry together.
        return backoff_delay(
            attempt, base=self.remote.backoff_base, cap=self.remote.backoff_cap, jitter=0.5
        )

    @contextlib.contextmanager
    def _workdir_lock(self) -> Iterator[None]:
        """Serialise use of the working clone between threads and processes of a host."""
        workdir = self.remote.workdir
        lock = local_lock(f"workdir:{workdir}")
        lock.acquire()
        try:
            with file_lock(
                workdir.parent / f".{workdir.name}.lock",
                timeout=self.remote.timeout * 10,
                timeout_error=RepositoryLockTimeout,
            ):
                yield
        finally:
            lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise GitOpsError("This GitWriter was closed.")

    def _build_env(self, basic_credentials: str) -> dict[str, str]:
        # Start from a clean slate: GIT_DIR, GIT_WORK_TREE or a stray GIT_SSH_COMMAND
        # in the worker's environment must not redirect what we do.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a terminal
                "GIT_ASKPASS": "/bin/false",
                "SSH_ASKPASS": "/bin/false",
                "GIT_ALLOW_PROTOCOL": "https:ssh:git:file",
                "LC_ALL": "C",  # stable English messages to classify errors by
                "GIT_AUTHOR_NAME": self.remote.author_name,
                "GIT_AUTHOR_EMAIL": self.remote.author_email,
                "GIT_COMMITTER_NAME": self.remote.author_name,
                "GIT_COMMITTER_EMAIL": self.remote.author_email,
            }
        )
        config = {
            "core.hooksPath": "/dev/null",  # no local hook may run inside the worker
            "commit.gpgSign": "false",
            "gc.autoDetach": "false",  # no background gc outliving the command
            "maintenance.auto": "false",
            "protocol.ext.allow": "never",
            "protocol.fd.allow": "never",
            "core.fsmonitor": "false",
            "advice.detachedHead": "false",
        }
        if basic_credentials and self.remote.url.lower().startswith("https://"):
            parts = urlsplit(self.remote.url)
            scope = f"https://{parts.netloc}/"
            config[f"http.{scope}.extraHeader"] = f"Authorization: Basic {basic_credentials}"
        for index, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        env["GIT_CONFIG_COUNT"] = str(len(config))
        ssh = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.remote.timeout}",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        if self.remote.ssh_known_hosts_file:
            ssh += ["-o", f"UserKnownHostsFile={self.remote.ssh_known_hosts_file}"]
        if self.remote.ssh_key_file:
            ssh += ["-i", self.remote.ssh_key_file, "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        env["GIT_SSH_VARIANT"] = "ssh"
        return env

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        remote: bool = False,
        timeout: float | None = None,
    ) -> _Result:
        """Run one git command in the working clone, killing its process group on timeout.

        ``remote`` marks commands that talk to the remote: their timeouts mean the
        remote is unavailable; a local command timing out is a local failure.
        """
        command = ["git", "-C", str(self.remote.workdir), *args]
        process = subprocess.Popen(  # noqa: S603 - fixed git argv, no shell
            command,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            start_new_session=True,  # its own process group: helpers die with it
        )
        try:
            stdout, stderr = process.communicate(input, timeout=timeout or self.remote.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            message = f"git {args[0]} took longer than {timeout or self.remote.timeout} s"
            if remote:
                raise GitRemoteUnavailable(
                    f"{message} talking to {redact_url(self.remote.url)}."
                ) from None
            raise GitCommandError(f"{message}.") from None
        result = _Result(
            process.returncode, stdout, self._redact(stderr.decode("utf-8", errors="replace"))
        )
        if check and result.returncode != 0:
            if remote:
                raise GitRemoteUnavailable(
                    f"git {args[0]} failed for {redact_url(self.remote.url)}: "
                    f"{_last_line(result.stderr)}"
                )
            raise GitCommandError(f"git {args[0]} failed: {_last_line(result.stderr)}")
        return result


# --- input checks ----------------------------------------------------------------------
def _check_files(files: Mapping[str, str]) -> dict[str, str]:
    if not files:
        raise GitOpsError("No files to write: a release always writes its manifests.")
    checked = {}
    for name, text in files.items():
        check_file_name(name)
        if not isinstance(text, str):
            raise UnsafePathError(f"The content of {name} must be text.")
        checked[name] = text
    return checked


def _single(value: str | Sequence[str] | None) -> str | None:
    if isinstance(value, str) or value is None:
        return value
    return value[0] if len(value) == 1 else None


def _check_release_id(value: object) -> str:
    """The canonical form of a release UUID (the trailer is searched for verbatim)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and is_plain(value):
        with contextlib.suppress(ValueError):
            return str(uuid.UUID(value))
    raise GitOpsError(f"The {REQUIRED_TRAILER} trailer must be one release UUID, not {value!r}.")


def _check_step_key(value: object, release_id: str) -> str:
    """``<release id>/<step name>``, of this release: the key is searched for verbatim."""
    if not isinstance(value, str) or not _STEP_KEY.fullmatch(value):
        raise GitOpsError(f"{value!r} is not a step key such as '<release id>/step-2'.")
    if not value.startswith(release_id + "/"):
        raise GitOpsError(f"The step key {value!r} does not belong to release {release_id}.")
    return value


def _commit_message(message: str, trailers: Mapping[str, str | Sequence[str]]) -> str:
    """Subject and body (control characters dropped), a blank line, then the trailers."""
    if not isinstance(message, str) or not message.strip():
        raise GitOpsError("The commit message is empty.")
    text = "".join(ch for ch in message if ch in "\n\t" or is_plain(ch)).strip()
    lines = []
    for key, value in trailers.items():
        if not _TRAILER_KEY.fullmatch(key):
            raise GitOpsError(f"{key!r} is not a trailer name (e.g. 'Approved-By').")
        values = [value] if isinstance(value, str) else list(value)
        for item in values:
            if not isinstance(item, str) or not item.strip() or not is_plain(item):
                raise GitOpsError(f"The {key} trailer value must be one line of text.")
            lines.append(f"{key}: {item.strip()}")
    return f"{text}\n\n" + "\n".join(lines) + "\n"


def _data(payload: bytes) -> list[bytes]:
    """A fast-import ``data`` command with an exact byte count (any content is safe)."""
    return [b"data %d\n" % len(payload), payload, b"\n"]


def _fast_import_path(path: PurePosixPath) -> str:
    """Paths here are checked names (DNS labels, plain file names); fast-import would read
    a leading quote or a line break differently, so refuse rather than quote."""
    text = str(path)
    if text.startswith('"') or any(ch in text for ch in "\n\r"):
        raise UnsafePathError(f"{text!r} cannot be written.")
    return text


def _cleanup_whitespace(message: str) -> str:
    """What ``git commit --cleanup=whitespace`` does: no trailing blanks on lines, runs
    of blank lines collapsed, none at either end."""
    lines: list[str] = []
    for line in message.splitlines():
        line = line.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no output"
