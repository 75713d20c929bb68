"""The git writer against real git and real bare repositories (file://).

Covers: the folder is replaced exactly, trailers, redelivery (same Release-Id) makes no
second commit, identical files still get a commit, pushes rejected by a hook or by a
concurrent outside commit are retried with backoff and never lose the outside commit, a
worker killed between commit and push, a remote that is down, unsafe URLs, credentials
kept out of messages, logs and the clone's config, and no git process left behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.gitops import git_writer as git_writer_module
from apps.gitops.errors import (
    GitOpsError,
    GitPushRejected,
    GitRemoteUnavailable,
    UnsafePathError,
    UnsafeRemoteError,
)
from apps.gitops.git_writer import GitRemote, GitWriter, check_remote_url
from apps.gitops.render import release_metadata_file, render
from apps.gitops.runtimes import Runtime
from tests.fixtures.git import BareRemote, child_processes, open_fd_count, run_git
from tests.gitops.conftest import make_request

FOLDER = "environments/staging/churn"


def release_files(release_id: str, runtime: Runtime = Runtime.CUSTOM, **overrides) -> dict:
    rendered = render(make_request(runtime, release_id=release_id, **overrides))
    name, text = release_metadata_file(
        release_id=release_id,
        kind="deploy",
        model_name="churn-classifier",
        model_version=4,
        requested_by="alice",
        approvers=["pat", "carol"],
    )
    return {**rendered.files, name: text}


def commit(writer: GitWriter, release_id: str, files: dict | None = None, **kwargs):
    return writer.commit_release(
        environment=kwargs.pop("environment", "staging"),
        service=kwargs.pop("service", "churn"),
        files=files if files is not None else release_files(release_id),
        message=kwargs.pop("message", f"Deploy churn v4 to staging ({release_id[:8]})"),
        trailers=kwargs.pop("trailers", None)
        or {
            "Release-Id": release_id,
            "Model-Version": "4",
            "Requested-By": "alice",
            "Approved-By": ["pat", "carol"],
        },
        **kwargs,
    )


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record backoff sleeps instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(git_writer_module, "_sleep", recorded.append)
    return recorded


# --- the happy path --------------------------------------------------------------------
def test_commit_writes_the_folder_with_trailers(gitops_remote: BareRemote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    files = release_files(release_id)

    outcome = commit(writer, release_id, files)

    assert outcome.created and outcome.push_attempts == 1
    assert gitops_remote.head() == outcome.sha
    assert gitops_remote.files_at(FOLDER) == files
    message = gitops_remote.messages()[0]
    assert message.startswith("Deploy churn v4 to staging")
    assert message.endswith(
        f"Release-Id: {release_id}\nModel-Version: 4\nRequested-By: alice\n"
        "Approved-By: pat\nApproved-By: carol"
    )
    # The template's own files are still there.
    assert "README.md" in gitops_remote.git("ls-tree", "--name-only", "main").stdout.decode()
    assert writer.current_files("staging", "churn") == files
    assert writer.current_files("staging", "other") == {}


def test_new_release_replaces_the_folder_and_removes_stale_files(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    commit(writer, first := new_id())
    assert "hpa.yaml" in gitops_remote.files_at(FOLDER)

    second = new_id()
    kserve = release_files(second, Runtime.KSERVE_SKLEARN, config={})
    commit(writer, second, kserve)

    assert gitops_remote.files_at(FOLDER) == kserve
    assert "hpa.yaml" not in gitops_remote.files_at(FOLDER)
    assert writer.find_release_commit(first) is not None


def test_first_commit_to_an_empty_repository(empty_remote: BareRemote, make_git_writer):
    writer = make_git_writer(empty_remote.url)
    outcome = commit(writer, new_id())
    assert outcome.created
    assert empty_remote.commit_count() == 1
    assert empty_remote.head() == outcome.sha


def test_other_services_and_environments_are_untouched(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    commit(writer, new_id(), service="fraud", files=release_files(new_id(), service="fraud"))
    before = gitops_remote.files_at("environments/staging/fraud")

    commit(writer, new_id())

    assert gitops_remote.files_at("environments/staging/fraud") == before


# --- idempotency -----------------------------------------------------------------------
def test_redelivered_release_is_not_committed_twice(gitops_remote, make_git_writer):
    release_id = new_id()
    first = commit(make_git_writer(gitops_remote.url, name="a"), release_id)
    count = gitops_remote.commit_count()

    # The task is delivered again, to another worker with its own clone.
    again = commit(make_git_writer(gitops_remote.url, name="b"), release_id)

    assert (again.sha, again.created, again.push_attempts) == (first.sha, False, 0)
    assert gitops_remote.commit_count() == count
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [first.sha]


def test_redelivery_is_found_with_a_since_bound(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    sha = commit(writer, release_id).sha
    now = datetime.now(UTC)
    assert writer.find_release_commit(release_id, since=now - timedelta(minutes=5)) == sha
    assert commit(writer, release_id, since=now - timedelta(minutes=5)).created is False
    # The bound really bounds: commits well before "since" are not searched.
    assert writer.find_release_commit(release_id, since=now + timedelta(days=3)) is None
    assert writer.find_release_commit(new_id()) is None


def test_release_id_must_match_exactly(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    commit(writer, release_id)
    # A message merely mentioning the id (not as the trailer) does not count.
    other = new_id()
    commit(writer, other, message=f"Mentions Release-Id: {release_id[:-1]}x in the body")
    assert writer.find_release_commit(release_id) != writer.find_release_commit(other)


def test_identical_files_still_get_their_own_commit(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    files = release_files(new_id())
    first = commit(writer, new_id(), files)
    second = commit(writer, new_id(), files)  # e.g. a rollback to exactly these files
    assert second.created and second.sha != first.sha
    assert gitops_remote.files_at(FOLDER) == files


def test_release_id_trailer_is_required_and_checked(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    with pytest.raises(GitOpsError, match="UUID"):
        commit(writer, new_id(), trailers={"Model-Version": "4"})
    with pytest.raises(GitOpsError, match="UUID"):
        commit(writer, new_id(), trailers={"Release-Id": "x\nRelease-Id: y"})
    with pytest.raises(GitOpsError, match="one line"):
        commit(writer, new_id(), trailers={"Release-Id": new_id(), "Approved-By": "a\nb"})
    with pytest.raises(GitOpsError, match="No files"):
        commit(writer, new_id(), files={})


# --- contention and rejection -----------------------------------------------------------
def test_outside_commit_between_fetch_and_push_is_kept(
    gitops_remote, make_git_writer, monkeypatch, sleeps
):
    writer = make_git_writer(gitops_remote.url)
    outside: list[str] = []
    real_push = writer._push

    def someone_pushes_first(sha: str):
        if not outside:  # lands after our fetch, before our push
            outside.append(
                gitops_remote.outside_commit("docs/ops.md", "on-call notes\n", "Ops: add notes")
            )
        return real_push(sha)

    monkeypatch.setattr(writer, "_push", someone_pushes_first)
    release_id = new_id()

    outcome = commit(writer, release_id)

    assert outcome.created and outcome.push_attempts == 2
    assert len(sleeps) == 1
    assert writer.is_ancestor(outside[0], outcome.sha), "the outside commit is kept"
    assert gitops_remote.files_at("docs")["ops.md"] == "on-call notes\n"
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


REJECT_TWICE = """#!/bin/sh
# Refuse the first two pushes ("change freeze"), then accept.
count_file="$(dirname "$0")/../push-count"
count=$(cat "$count_file" 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > "$count_file"
if [ "$count" -le 2 ]; then
  echo "change freeze until 14:00, try again" >&2
  exit 1
fi
exit 0
"""


def test_rejected_pushes_are_retried_with_growing_backoff(gitops_remote, make_git_writer, sleeps):
    gitops_remote.set_hook("pre-receive", REJECT_TWICE)
    writer = make_git_writer(gitops_remote.url, backoff_base=1.0, backoff_cap=60)
    release_id = new_id()

    outcome = commit(writer, release_id)

    assert outcome.created and outcome.push_attempts == 3
    assert len(sleeps) == 2
    # Jittered within [d/2, d] with d doubling: 1 s then 2 s.
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_backoff_waits_outside_the_repository_lock(gitops_remote, make_git_writer, monkeypatch):
    gitops_remote.set_hook("pre-receive", REJECT_TWICE)
    held = threading.Event()
    lock_held_while_sleeping: list[bool] = []

    @contextlib.contextmanager
    def tracking_lock():
        held.set()
        try:
            yield
        finally:
            held.clear()

    monkeypatch.setattr(
        git_writer_module, "_sleep", lambda s: lock_held_while_sleeping.append(held.is_set())
    )
    writer = make_git_writer(gitops_remote.url, lock=tracking_lock)
    assert commit(writer, new_id()).push_attempts == 3
    assert lock_held_while_sleeping == [False, False]


def test_backoff_is_capped(gitops_remote, make_git_writer, sleeps):
    gitops_remote.set_hook("pre-receive", "#!/bin/sh\necho 'frozen' >&2\nexit 1\n")
    writer = make_git_writer(gitops_remote.url, max_attempts=6, backoff_base=1.0, backoff_cap=3.0)
    with pytest.raises(GitPushRejected):
        commit(writer, new_id())
    assert len(sleeps) == 5
    assert max(sleeps) <= 3.0


def test_a_remote_that_keeps_refusing_raises_retryable_push_rejected(
    gitops_remote, make_git_writer, sleeps
):
    gitops_remote.set_hook("pre-receive", "#!/bin/sh\necho 'pushes frozen' >&2\nexit 1\n")
    writer = make_git_writer(gitops_remote.url, max_attempts=3)
    before = gitops_remote.head()
    release_id = new_id()

    with pytest.raises(GitPushRejected) as caught:
        commit(writer, release_id)

    assert caught.value.retryable
    assert "3 times" in str(caught.value) and "pushes frozen" in str(caught.value)
    assert gitops_remote.head() == before

    # Later, the remote accepts again: the retried task pushes exactly one commit.
    gitops_remote.remove_hook("pre-receive")
    outcome = commit(writer, release_id)
    assert outcome.created
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_concurrent_writers_all_land_once(gitops_remote, make_git_writer):
    ids = [new_id() for _ in range(6)]
    services = ["alpha", "bravo", "charlie"]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        writer = make_git_writer(gitops_remote.url, name=f"w{index}")
        try:
            for release_id in ids[index::3]:
                service = services[index]
                commit(
                    writer,
                    release_id,
                    service=service,
                    files=release_files(release_id, service=service),
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    for release_id in ids:
        assert len(gitops_remote.commits_with_trailer("Release-Id", release_id)) == 1


# --- crashes ---------------------------------------------------------------------------
class WorkerKilled(BaseException):
    """Stands in for SIGKILL: not an Exception, nothing catches it."""


def test_worker_killed_between_commit_and_push(gitops_remote, make_git_writer, monkeypatch):
    release_id = new_id()
    doomed = make_git_writer(gitops_remote.url, name="doomed")

    def killed(sha: str):
        raise WorkerKilled

    monkeypatch.setattr(doomed, "_push", killed)
    with pytest.raises(WorkerKilled):
        commit(doomed, release_id)
    # The commit exists only in the dead worker's clone.
    local_log = run_git(
        "log", "-1", "--format=%B", cwd=doomed.remote.workdir, home=gitops_remote.scratch
    ).stdout.decode()
    assert release_id in local_log
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == []

    # The worker restarts on the same clone; the task is redelivered.
    restarted = make_git_writer(gitops_remote.url, name="doomed")
    outcome = restarted.commit_release(
        environment="staging",
        service="churn",
        files=release_files(release_id),
        message="Deploy again",
        trailers={"Release-Id": release_id},
    )

    assert outcome.created and outcome.push_attempts == 1
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_leftovers_in_the_working_clone_never_reach_a_commit(gitops_remote, make_git_writer):
    # Commits are built from objects, not from the clone's work tree: whatever a dead
    # worker (or a person) left there is not committed.
    writer = make_git_writer(gitops_remote.url)
    commit(writer, new_id())
    junk = writer.remote.workdir / FOLDER / "half-written.yaml"
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_text("kind: Secret\n")
    (writer.remote.workdir / "stray.txt").write_text("x")
    git_writer_module._states.clear()  # a restarted worker, too

    commit(writer, new_id())

    assert "half-written.yaml" not in gitops_remote.files_at(FOLDER)
    top = gitops_remote.git("ls-tree", "--name-only", "main").stdout.decode().split()
    assert "stray.txt" not in top


def test_a_committed_symlink_cannot_redirect_writes(gitops_remote, make_git_writer, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = gitops_remote.clone()
    (work / "environments" / "staging").rename(work / "staging-moved")
    (work / "environments" / "staging").symlink_to(outside)
    run_git("add", "-A", cwd=work, home=gitops_remote.scratch)
    run_git("commit", "-q", "-m", "evil", cwd=work, home=gitops_remote.scratch)
    run_git("push", "-q", "origin", "HEAD:main", cwd=work, home=gitops_remote.scratch)

    with pytest.raises(UnsafePathError, match="symbolic link"):
        commit(make_git_writer(gitops_remote.url), new_id())
    assert list(outside.iterdir()) == []


# --- the remote is down ----------------------------------------------------------------
def test_remote_down_raises_retryable_unavailable(tmp_path, make_git_writer):
    writer = make_git_writer((tmp_path / "nowhere" / "gitops.git").as_uri())
    with pytest.raises(GitRemoteUnavailable) as caught:
        commit(writer, new_id())
    assert caught.value.retryable
    assert "Cannot fetch" in str(caught.value)


def test_remote_disappearing_after_use(gitops_remote, make_git_writer, tmp_path):
    writer = make_git_writer(gitops_remote.url)
    commit(writer, new_id())
    gitops_remote.path.rename(tmp_path / "moved.git")
    with pytest.raises(GitRemoteUnavailable):
        commit(writer, new_id())
    with pytest.raises(GitRemoteUnavailable):
        writer.current_files("staging", "churn")
    # Without fetching, the last known state is still readable.
    assert "deployment.yaml" in writer.current_files("staging", "churn", fetch=False)


# --- URLs and credentials --------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::17",
        "http://git.example.com/gitops.git",
        "https://user:hunter2@git.example.com/gitops.git",
        "https://ghp_token@git.example.com/gitops.git",
        "-uploadpack=touch /tmp/x",
        "--upload-pack=x",
        "file://otherhost/srv/gitops.git",
        "ssh://-oProxyCommand=touch%20x/repo",
        "git.example.com:platform/gitops.git",
        "/srv/gitops.git",
        "ftp://git.example.com/gitops.git",
        "https://git.example.com/gitops.git\n",
        "",
    ],
)
def test_unsafe_remote_urls_are_refused(url, tmp_path):
    with pytest.raises(UnsafeRemoteError) as caught:
        GitRemote(
            url=url,
            branch="main",
            workdir=tmp_path / "c",
            author_name="S",
            author_email="s@example.com",
        )
    assert "hunter2" not in str(caught.value) and "ghp_token" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/platform/gitops.git",
        "ssh://git@git.example.com:2222/platform/gitops.git",
        "git@git.example.com:platform/gitops.git",
        "git://127.0.0.1:9418/gitops.git",
        "file:///srv/git/gitops.git",
    ],
)
def test_safe_remote_urls_are_accepted(url):
    assert check_remote_url(url) == url


def test_git_refuses_transport_helpers_even_if_a_url_slipped_through(tmp_path, gitops_remote):
    # Defence in depth: GIT_ALLOW_PROTOCOL in the writer's environment.
    writer = GitWriter(
        GitRemote(
            url=gitops_remote.url,
            branch="main",
            workdir=tmp_path / "c",
            author_name="S",
            author_email="s@example.com",
        )
    )
    writer._prepare()
    writer._git("remote", "set-url", "origin", f"ext::sh -c touch% {tmp_path}/pwned")
    with pytest.raises(GitRemoteUnavailable):
        writer._fetch()
    assert not (tmp_path / "pwned").exists()


def test_token_never_appears_in_errors_logs_or_the_clone(tmp_path, caplog, make_git_writer):
    token = "tok-" + uuid.uuid4().hex
    # Port 9 on loopback: nothing listens, so the fetch fails fast.
    writer = make_git_writer(
        "https://127.0.0.1:9/platform/gitops.git", https_token=token, timeout=10
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(GitRemoteUnavailable) as caught:
        commit(writer, new_id())

    text = str(caught.value) + caplog.text + repr(writer.remote)
    assert token not in text
    header_values = [v for k, v in writer._env.items() if k.startswith("GIT_CONFIG_VALUE")]
    basic = next(v for v in header_values if v.startswith("Authorization: Basic "))
    assert basic.removeprefix("Authorization: Basic ") not in text
    # The header is scoped to the remote's host, and nothing is stored in the clone.
    scopes = [v for k, v in writer._env.items() if k.startswith("GIT_CONFIG_KEY")]
    assert "http.https://127.0.0.1:9/.extraHeader" in scopes
    config = (writer.remote.workdir / ".git" / "config").read_text()
    assert token not in config and "Authorization" not in config


def test_redactor_masks_the_token_in_git_output(make_git_writer):
    token = "tok-" + uuid.uuid4().hex
    writer = make_git_writer("https://git.example.com/x.git", https_token=token)
    assert writer._redact(f"fatal: bad {token} https://u:{token}@h/x") == (
        "fatal: bad *** https://u:***@h/x"
    )


# --- resources -------------------------------------------------------------------------
def test_no_git_process_or_file_descriptor_outlives_many_commits(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    for _ in range(5):
        commit(writer, new_id())
    writer.current_files("staging", "churn")
    fds_before = open_fd_count()
    # Other tests' session-wide servers (Prometheus, Chromium) may be children already.
    children_before = set(child_processes())

    for _ in range(30):
        commit(writer, new_id())
        writer.current_files("staging", "churn")
        writer.is_ancestor(gitops_remote.head(), gitops_remote.head())

    assert [c for c in child_processes() if "git" in c[1]] == []
    assert set(child_processes()) - children_before == set()
    assert open_fd_count() <= fds_before + 1


def test_closed_writer_refuses_work(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    writer.close()
    with pytest.raises(GitOpsError, match="closed"):
        commit(writer, new_id())


def test_is_ancestor(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    ours = commit(writer, new_id()).sha
    later = gitops_remote.outside_commit("docs/x.md", "x\n", "later")  # not fetched yet
    assert writer.is_ancestor(ours, later)
    assert writer.is_ancestor(ours, ours)
    assert not writer.is_ancestor(later, ours)
    assert not writer.is_ancestor(ours, "0" * 40)
    with pytest.raises(GitOpsError):
        writer.is_ancestor("--help", ours)


# --- ls_remote: the readiness probe's question, asked without a working clone ---------------


def test_ls_remote_finds_the_branch_without_cloning(gitops_remote, make_git_writer):
    writer = make_git_writer(gitops_remote.url)
    probe = writer.ls_remote(timeout=10)
    assert probe.returncode == 0
    assert not writer.remote.workdir.exists(), "ls_remote must not create the working clone"


def test_ls_remote_on_an_empty_remote_says_the_branch_is_missing(empty_remote, make_git_writer):
    assert make_git_writer(empty_remote.url).ls_remote(timeout=10).returncode == 2


def test_ls_remote_on_a_missing_remote_fails_with_gits_reason(tmp_path, make_git_writer):
    probe = make_git_writer((tmp_path / "nowhere.git").as_uri()).ls_remote(timeout=10)
    assert probe.returncode not in (0, 2)
    assert "fatal:" in probe.stderr


# --- fetch only when needed, still exactly once ----------------------------------------
@pytest.fixture
def git_calls(monkeypatch) -> list[str]:
    """The git subcommands every GitWriter runs (one process each)."""
    calls: list[str] = []
    real = GitWriter._git

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GitWriter, "_git", counting)
    return calls


def test_a_known_tip_commits_with_two_git_processes(gitops_remote, make_git_writer, git_calls):
    writer = make_git_writer(gitops_remote.url)
    commit(writer, new_id(), since=datetime.now(UTC))
    assert "fetch" in git_calls, "the first commit of a process learns the tip"

    git_calls.clear()
    release_id = new_id()
    outcome = commit(writer, release_id, since=datetime.now(UTC))

    assert git_calls == ["fast-import", "push"]
    assert outcome.created and gitops_remote.head() == outcome.sha
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]
    # A new GitWriter in the same process (one per deploy task) keeps that knowledge.
    git_calls.clear()
    commit(make_git_writer(gitops_remote.url), new_id(), since=datetime.now(UTC))
    assert git_calls == ["fast-import", "push"]


def test_a_retried_task_in_the_same_process_finds_its_pushed_commit(
    gitops_remote, make_git_writer, git_calls
):
    # Pushed, then recording it in the database failed: the task runs again here.
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    first = commit(writer, release_id, since=datetime.now(UTC))
    git_calls.clear()

    again = commit(writer, release_id, since=datetime.now(UTC) - timedelta(minutes=1))

    assert not again.created and again.sha == first.sha and again.push_attempts == 0
    assert git_calls == [], "found in memory, without spawning git"
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [first.sha]


def test_a_commit_pushed_elsewhere_after_our_knowledge_is_found_through_the_rejection(
    gitops_remote, make_git_writer, sleeps
):
    mine = make_git_writer(gitops_remote.url, name="mine")
    commit(mine, new_id(), since=datetime.now(UTC))  # learns the tip
    release_id = new_id()
    # Another worker (its own process: its own clone and memory) commits the release.
    other = make_git_writer(gitops_remote.url, name="other")
    theirs = commit(other, release_id, since=datetime.now(UTC))

    # Our tip is now stale: the push is refused, the retry fetches and finds it.
    # (Another message: the same one in the same second would be the very same commit.)
    outcome = commit(
        mine, release_id, message="Deploy again", since=datetime.now(UTC) - timedelta(minutes=1)
    )

    assert not outcome.created and outcome.sha == theirs.sha
    # A stale remembered tip is no contention: looked again at once, no backoff.
    assert outcome.push_attempts == 1 and sleeps == []
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [theirs.sha]


def test_a_commit_in_the_known_history_is_found_without_pushing(
    gitops_remote, make_git_writer, git_calls
):
    release_id = new_id()
    other = make_git_writer(gitops_remote.url, name="other")
    theirs = commit(other, release_id, since=datetime.now(UTC))
    mine = make_git_writer(gitops_remote.url, name="mine")
    commit(mine, new_id(), since=datetime.now(UTC))  # fetches: the history now holds it
    git_calls.clear()

    # Redelivered to us: approved a minute ago (memory), or long ago (git log).
    recent = commit(mine, release_id, since=datetime.now(UTC) - timedelta(minutes=1))
    assert git_calls == []
    old = commit(mine, release_id, since=datetime.now(UTC) - timedelta(days=30))
    assert git_calls == ["log"]
    unbounded = commit(mine, release_id)

    for outcome in (recent, old, unbounded):
        assert not outcome.created and outcome.sha == theirs.sha
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [theirs.sha]


def test_a_restarted_process_fetches_and_finds_the_commit_pushed_before_the_kill(
    gitops_remote, make_git_writer, git_calls
):
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    pushed = commit(writer, release_id, since=datetime.now(UTC))
    gitops_remote.outside_commit("docs/ops.md", "notes\n", "Ops: notes")
    git_writer_module._states.clear()  # the process died after the push; a new one
    git_calls.clear()

    outcome = commit(make_git_writer(gitops_remote.url), release_id, since=datetime.now(UTC))

    assert "fetch" in git_calls and "push" not in git_calls
    assert not outcome.created and outcome.sha == pushed.sha


def test_an_error_mid_attempt_forgets_the_tip(gitops_remote, make_git_writer, monkeypatch):
    # A push that timed out may have landed: the next attempt must fetch and look.
    writer = make_git_writer(gitops_remote.url)
    commit(writer, new_id(), since=datetime.now(UTC))
    release_id = new_id()
    real_push = writer._push

    def lands_then_times_out(sha: str):
        real_push(sha)
        raise GitRemoteUnavailable("git push took longer than 20 s")

    monkeypatch.setattr(writer, "_push", lands_then_times_out)
    with pytest.raises(GitRemoteUnavailable):
        commit(writer, release_id, since=datetime.now(UTC))
    monkeypatch.undo()

    outcome = commit(writer, release_id, since=datetime.now(UTC))

    assert not outcome.created
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_a_stale_remembered_tip_is_refetched_without_waiting(
    gitops_remote, make_git_writer, sleeps, git_calls
):
    mine = make_git_writer(gitops_remote.url, name="mine")
    commit(mine, new_id(), since=datetime.now(UTC))
    outside = gitops_remote.outside_commit("docs/ops.md", "notes\n", "Ops: notes")
    git_calls.clear()
    release_id = new_id()

    outcome = commit(mine, release_id, since=datetime.now(UTC))

    assert outcome.created and outcome.push_attempts == 2 and sleeps == []
    assert git_calls.count("fetch") == 1
    assert mine.is_ancestor(outside, outcome.sha), "the outside commit is kept"
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_a_sibling_process_push_through_the_shared_clone_is_noticed_before_building(
    gitops_remote, make_git_writer, git_calls
):
    # Two prefork workers share one clone; each has its own memory.
    first = make_git_writer(gitops_remote.url, name="shared")
    commit(first, new_id(), since=datetime.now(UTC))
    remembered = dict(git_writer_module._states)
    git_writer_module._states.clear()  # the sibling process: knows nothing yet
    sibling = make_git_writer(gitops_remote.url, name="shared")
    commit(sibling, new_id(), since=datetime.now(UTC))
    git_writer_module._states.clear()
    git_writer_module._states.update(remembered)  # back in the first process
    git_calls.clear()
    release_id = new_id()

    outcome = commit(first, release_id, since=datetime.now(UTC))

    assert git_calls[0] == "fetch" and git_calls.count("push") == 1
    assert outcome.created and outcome.push_attempts == 1
    assert gitops_remote.commits_with_trailer("Release-Id", release_id) == [outcome.sha]


def test_each_step_of_one_release_is_its_own_commit_found_again_by_its_step_key(
    gitops_remote, make_git_writer
):
    """Progressive releases: every step carries the same Release-Id, so steps are
    deduplicated on their Step-Key trailer, in memory and by a fresh worker alike."""
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    one = commit(writer, release_id, step_key=f"{release_id}/step-1")
    two = commit(writer, release_id, step_key=f"{release_id}/step-2")
    assert one.created and two.created and one.sha != two.sha
    count = gitops_remote.commit_count()
    assert commit(writer, release_id, step_key=f"{release_id}/step-2").sha == two.sha
    fresh = make_git_writer(gitops_remote.url, name="fresh")
    again = commit(fresh, release_id, step_key=f"{release_id}/step-1")
    assert (again.sha, again.created) == (one.sha, False)
    assert gitops_remote.commit_count() == count
    assert gitops_remote.commits_with_trailer("Step-Key", f"{release_id}/step-2") == [two.sha]
    assert len(gitops_remote.commits_with_trailer("Release-Id", release_id)) == 2


@pytest.mark.parametrize("who", ["same", "fresh", "fresh-scan-only"])
def test_a_step_of_a_release_is_not_taken_for_its_own_commit(gitops_remote, make_git_writer, who):
    """A shadow evaluation commits a step of a release before the release is approved;
    its Release-Id trailer must not make the release's own commit look done, whether
    the writer pushed the step itself, learned it from the tip, or searched history."""
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    step = commit(writer, release_id, step_key=f"{release_id}/shadow-evaluation")
    if who != "same":
        writer = make_git_writer(gitops_remote.url, name=who)
    if who == "fresh-scan-only":
        # Older than the tip scan: only the history search (--grep) can find it.
        own = commit(writer, release_id, since=datetime.now(UTC) - timedelta(days=30))
    else:
        own = commit(writer, release_id)
    assert own.created and own.sha != step.sha
    assert commit(writer, release_id).sha == own.sha  # and found again as itself


@pytest.mark.parametrize("key", ["step-1", "not a key/step-1", "{other}/step-1", "{id}/Step 1"])
def test_a_step_key_must_be_this_releases_and_plain(gitops_remote, make_git_writer, key):
    writer = make_git_writer(gitops_remote.url)
    release_id = new_id()
    with pytest.raises(GitOpsError):
        commit(writer, release_id, step_key=key.format(id=release_id, other=new_id()))
