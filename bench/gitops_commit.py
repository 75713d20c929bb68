"""Benchmark: committing releases to the GitOps repository.

    .venv/bin/python -m bench.gitops_commit [--quick] [--releases 200]
        [--histories 1000,100000] [--writers 8] [--duration 60] [--leak-commits 1000]
        [--lock auto|postgres|file]

Prints:

1. approve -> commit on the remote: ``GitWriter.commit_release`` latency p50/p95 over
   ``--releases`` releases, on repositories with 1k and 100k commits of history (made
   with ``git fast-import``, one commit every 10 minutes, i.e. ~2 years for 100k), next
   to raw ``git add/commit/push`` of the same files from a plain clone in the same run,
   and the ratio, and the git processes each side starts per commit (Slipway's counted
   at ``GitWriter._git``, its one process spawner; raw git's at this script's ``git``).
   Rendering (+ validation) is timed apart: it happens at submission.
2. ``--writers`` concurrent approvers for ``--duration`` seconds, each worker with its
   own clone: commits per second and push attempts per commit, with the repository
   lock (PostgreSQL advisory lock when PostgreSQL answers) and without any lock
   (writers then race and rely on rejected-push retries).
3. one worker's child processes and open file descriptors before and after
   ``--leak-commits`` deploys.

Everything lives in a temporary directory on local disk (``file://`` remotes), so the
figures are git's and Slipway's cost, not a network's. ``--quick`` shrinks everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "gitops-repo-template"
BRANCH = "main"


def _setup_django(lock: str) -> str:
    """Use the test settings; the only database use is the advisory lock."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    postgres_up = False
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), 1):
        postgres_up = True
    if lock in ("auto", "postgres") and postgres_up:
        # Any existing database will do for pg_advisory_lock.
        os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    elif lock == "postgres":
        sys.exit("--lock postgres: PostgreSQL does not answer on 127.0.0.1:5432")
    import django

    django.setup()
    import logging

    # Rejected pushes are expected in the lock-free run; the figures say how many.
    logging.getLogger("apps.gitops").setLevel(logging.ERROR)
    from django.db import connection

    return "postgres" if connection.vendor == "postgresql" and lock != "file" else "file"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        LC_ALL="C",
        GIT_AUTHOR_NAME="Raw Git",
        GIT_AUTHOR_EMAIL="raw@example.com",
        GIT_COMMITTER_NAME="Raw Git",
        GIT_COMMITTER_EMAIL="raw@example.com",
    )
    return env


RAW_GIT_PROCESSES = [0]


def git(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    RAW_GIT_PROCESSES[0] += 1
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_env(),
        input=input,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def make_history(bare: Path, commits: int) -> float:
    """A bare repository: the template, then ``commits`` commits 10 minutes apart."""
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", "-b", BRANCH, str(bare), cwd=bare.parent)
    started = time.perf_counter()
    spacing = 600
    first = int(time.time()) - commits * spacing - 3600
    chunks: list[bytes] = []

    def data(payload: bytes) -> None:
        chunks.append(b"data %d\n" % len(payload) + payload + b"\n")

    chunks.append(b"commit refs/heads/main\nmark :1\n")
    chunks.append(b"committer Platform <platform@example.com> %d +0000\n" % first)
    data(b"Start from the Slipway template\n")
    for path in sorted(p for p in TEMPLATE.rglob("*") if p.is_file()):
        chunks.append(b"M 100644 inline " + str(path.relative_to(TEMPLATE)).encode() + b"\n")
        data(path.read_bytes())
    for index in range(2, commits + 1):
        chunks.append(b"commit refs/heads/main\nmark :%d\n" % index)
        chunks.append(
            b"committer Platform <platform@example.com> %d +0000\n" % (first + index * spacing)
        )
        data(b"Service %d: routine change %d\n" % (index % 50, index))
        chunks.append(b"from :%d\n" % (index - 1))
        chunks.append(b"M 100644 inline environments/staging/svc-%d/notes.txt\n" % (index % 50))
        data(b"change %d\n" % index)
    git("fast-import", "--quiet", cwd=bare, input=b"".join(chunks))
    git("gc", "-q", "--aggressive" if commits <= 10_000 else "--auto", cwd=bare)
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def release_files(service: str, release_id: str, version: int) -> dict[str, str]:
    from apps.gitops.render import RenderRequest, release_metadata_file, render
    from apps.gitops.runtimes import Runtime

    rendered = render(
        RenderRequest(
            service=service,
            environment="staging",
            runtime=Runtime.CUSTOM,
            release_id=release_id,
            model_name="churn-classifier",
            model_version=version,
            model_uri=f"s3://models/churn/{version}",
            config={
                "image": "registry.example.com/ml/churn:1.4.2",
                "replicas": {"min": 2, "max": 6},
                "secret_refs": ["churn-db"],
                "env": {"LOG_LEVEL": "info"},
            },
        )
    )
    name, text = release_metadata_file(
        release_id=release_id,
        kind="deploy",
        model_name="churn-classifier",
        model_version=version,
        requested_by="alice",
        approvers=["pat", "carol"],
    )
    return {**rendered.files, name: text}


SLIPWAY_GIT_PROCESSES = [0]


def count_slipway_git_processes() -> None:
    """Count every git process GitWriter starts (each ``_git`` call is one)."""
    from apps.gitops.git_writer import GitWriter

    real = GitWriter._git

    def counting(self, *args, **kwargs):
        SLIPWAY_GIT_PROCESSES[0] += 1
        return real(self, *args, **kwargs)

    GitWriter._git = counting


def writer_for(url: str, workdir: Path, lock_backend: str | None, lock_dir: Path):
    from apps.gitops.git_writer import GitRemote, GitWriter
    from apps.gitops.locks import repository_lock

    remote = GitRemote(
        url=url,
        branch=BRANCH,
        workdir=workdir,
        author_name="Slipway",
        author_email="slipway@example.com",
        timeout=120,
        max_attempts=50,
        backoff_base=0.05,
        backoff_cap=1.0,
    )
    if lock_backend is None:
        return GitWriter(remote, lock=contextlib.nullcontext)
    return GitWriter(
        remote,
        lock=lambda: repository_lock(url, backend=lock_backend, lock_dir=lock_dir, timeout=600),
    )


def raw_commit(clone: Path, folder: str, files: dict[str, str], message: str) -> None:
    target = clone / folder
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, text in files.items():
        (target / name).write_text(text)
    git("add", "-A", "--", folder, cwd=clone)
    git("commit", "-q", "-m", message, cwd=clone)
    git("push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=clone)


def bench_latency(root: Path, history: int, releases: int, lock_backend: str) -> None:
    from datetime import UTC, datetime

    label = f"{history:,} commits of history"
    bare = root / f"h{history}" / "slipway.git"
    made = make_history(bare, history)
    raw_bare = root / f"h{history}" / "raw.git"
    shutil.copytree(bare, raw_bare)
    writer = writer_for(
        bare.as_uri(), root / f"h{history}" / "worker", lock_backend, root / "locks"
    )
    started = time.perf_counter()
    writer.current_files("staging", "churn")  # first fetch of the whole history
    first_fetch = time.perf_counter() - started
    raw_clone = root / f"h{history}" / "raw-clone"
    git("clone", "-q", "-b", BRANCH, raw_bare.as_uri(), str(raw_clone), cwd=root)

    since = datetime.now(UTC)
    render_times, slipway_times, raw_times, attempts = [], [], [], []
    slipway_procs: list[int] = []
    raw_procs: list[int] = []
    for index in range(releases):
        release_id = str(uuid.uuid4())
        t0 = time.perf_counter()
        files = release_files("churn", release_id, index + 1)
        render_times.append(time.perf_counter() - t0)
        message = f"Deploy churn v{index + 1} to staging"
        before = SLIPWAY_GIT_PROCESSES[0]
        t0 = time.perf_counter()
        outcome = writer.commit_release(
            environment="staging",
            service="churn",
            files=files,
            message=message,
            trailers={
                "Release-Id": release_id,
                "Model-Version": str(index + 1),
                "Requested-By": "alice",
                "Approved-By": ["pat", "carol"],
            },
            since=since,
        )
        slipway_times.append(time.perf_counter() - t0)
        slipway_procs.append(SLIPWAY_GIT_PROCESSES[0] - before)
        attempts.append(outcome.push_attempts)
        before = RAW_GIT_PROCESSES[0]
        t0 = time.perf_counter()
        raw_commit(
            raw_clone, "environments/staging/churn", files, f"{message}\n\nRelease-Id: {release_id}"
        )
        raw_times.append(time.perf_counter() - t0)
        raw_procs.append(RAW_GIT_PROCESSES[0] - before)

    # The idempotency check on its own: bounded by "since" vs the whole history.
    probe = str(uuid.uuid4())
    t0 = time.perf_counter()
    writer.find_release_commit(probe, since=since, fetch=False)
    bounded = time.perf_counter() - t0
    t0 = time.perf_counter()
    writer.find_release_commit(probe, fetch=False)
    unbounded = time.perf_counter() - t0
    writer.close()

    s50, s95 = percentile(slipway_times, 0.5), percentile(slipway_times, 0.95)
    r50, r95 = percentile(raw_times, 0.5), percentile(raw_times, 0.95)
    print(f"\n[{label}] history built in {made:.1f} s; worker's first fetch {first_fetch:.2f} s")
    print(
        f"  render + validate       p50 {fmt_ms(percentile(render_times, 0.5))}"
        f"   p95 {fmt_ms(percentile(render_times, 0.95))}"
    )
    print(
        f"  slipway commit_release  p50 {fmt_ms(s50)}   p95 {fmt_ms(s95)}"
        f"   (push attempts: {sum(attempts)}/{releases})"
    )
    print(f"  raw add/commit/push     p50 {fmt_ms(r50)}   p95 {fmt_ms(r95)}")
    print(f"  ratio slipway/raw       p50 {s50 / r50:5.2f}x     p95 {s95 / r95:5.2f}x")
    print(
        f"  git processes per commit: slipway {sum(slipway_procs) / releases:.2f} "
        f"(first {slipway_procs[0]}, then {percentile(slipway_procs[1:] or [0], 0.5)}), "
        f"raw {sum(raw_procs) / releases:.2f}"
    )
    print(
        f"  Release-Id lookup: since-bounded {fmt_ms(bounded)}, whole history {fmt_ms(unbounded)}"
    )


def bench_concurrency(root: Path, writers: int, duration: float, lock_backend: str | None) -> None:
    name = f"lock={lock_backend}" if lock_backend else "no lock (push retries only)"
    bare = root / f"concurrent-{lock_backend}" / "gitops.git"
    make_history(bare, 1000)
    workers = [
        writer_for(bare.as_uri(), bare.parent / f"w{i}", lock_backend, root / "locks")
        for i in range(writers)
    ]
    for index, worker in enumerate(workers):  # warm each clone outside the timing
        worker.current_files("staging", f"svc{index}")
    commits = [0] * writers
    pushes = [0] * writers
    errors: list[BaseException] = []
    stop_at = time.monotonic() + duration

    def run(index: int) -> None:
        version = 0
        try:
            while time.monotonic() < stop_at:
                version += 1
                release_id = str(uuid.uuid4())
                outcome = workers[index].commit_release(
                    environment="staging",
                    service=f"svc{index}",
                    files=release_files(f"svc{index}", release_id, version),
                    message=f"Deploy svc{index} v{version}",
                    trailers={"Release-Id": release_id},
                )
                commits[index] += 1
                pushes[index] += outcome.push_attempts
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    from django.db import connections

    connections.close_all()
    total = sum(commits)
    print(f"\n[{writers} concurrent approvers, {duration:.0f} s, {name}]")
    print(f"  commits: {total} in {elapsed:.1f} s = {total / elapsed:.2f} commits/s")
    print(
        f"  push attempts per commit: {sum(pushes) / max(total, 1):.2f}"
        f"   per writer: {', '.join(map(str, commits))}"
    )
    if errors:
        print(f"  errors: {len(errors)}, first: {errors[0]!r}")
    remote_count = int(git("rev-list", "--count", BRANCH, cwd=bare).decode())
    print(
        f"  commits on the remote: {remote_count - 1000} (each release exactly once: "
        f"{remote_count - 1000 == total})"
    )


def children() -> list[str]:
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    found.append(stat[stat.index("(") + 1 : stat.rindex(")")])
    return found


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_leaks(root: Path, commits: int, lock_backend: str) -> None:
    bare = root / "leaks" / "gitops.git"
    make_history(bare, 1000)
    writer = writer_for(bare.as_uri(), root / "leaks" / "worker", lock_backend, root / "locks")
    writer.current_files("staging", "churn")
    before = (children(), len(os.listdir("/proc/self/fd")), rss_mib())
    started = time.perf_counter()
    for index in range(commits):
        release_id = str(uuid.uuid4())
        writer.commit_release(
            environment="staging",
            service="churn",
            files=release_files("churn", release_id, index + 1),
            message=f"Deploy v{index + 1}",
            trailers={"Release-Id": release_id},
        )
    elapsed = time.perf_counter() - started
    after = (children(), len(os.listdir("/proc/self/fd")), rss_mib())
    writer.close()
    print(f"\n[{commits} deploys by one worker in {elapsed:.1f} s]")
    print(
        f"  child processes: before {len(before[0])} {before[0]}, after {len(after[0])} {after[0]}"
    )
    print(f"  open file descriptors: before {before[1]}, after {after[1]}")
    print(f"  RSS: before {before[2]:.1f} MiB, after {after[2]:.1f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 releases, 1k and 10k history, 10 s, 200 leak commits",
    )
    parser.add_argument("--releases", type=int)
    parser.add_argument("--histories")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--leak-commits", type=int)
    parser.add_argument("--lock", choices=["auto", "postgres", "file"], default="auto")
    parser.add_argument("--skip", default="", help="comma list of: latency,concurrency,leaks")
    args = parser.parse_args(argv)
    releases = args.releases or (50 if args.quick else 200)
    histories = [
        int(h)
        for h in (args.histories or ("1000,10000" if args.quick else "1000,100000")).split(",")
    ]
    duration = args.duration or (10.0 if args.quick else 60.0)
    leak_commits = args.leak_commits or (200 if args.quick else 1000)
    skip = set(filter(None, args.skip.split(",")))

    lock_backend = _setup_django(args.lock)
    count_slipway_git_processes()
    print(
        f"git {git('--version', cwd=Path.cwd()).decode().split()[-1]}, "
        f"{os.cpu_count()} CPUs, repository lock: {lock_backend}"
    )
    with tempfile.TemporaryDirectory(prefix="slipway-bench-gitops-") as tmp:
        root = Path(tmp)
        if "latency" not in skip:
            for history in histories:
                bench_latency(root, history, releases, lock_backend)
        if "concurrency" not in skip:
            bench_concurrency(root, args.writers, duration, lock_backend)
            bench_concurrency(root, args.writers, duration, None)
        if "leaks" not in skip:
            bench_leaks(root, leak_commits, lock_backend)


if __name__ == "__main__":
    main()
