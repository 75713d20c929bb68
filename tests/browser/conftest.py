"""Browser tests: Playwright drives Debian's Chromium against Django's live server.

A background "cluster" thread plays the deploy worker and Argo CD: it drains approved
releases into a real bare GitOps repository and marks them live through the demo
cluster simulator (which reads that repository), exactly as `make demo` does.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from django.db import connection

from tests.services import need_executable
from tests.waiting import wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    executable = need_executable("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server):
    """A fresh browser context whose requests may only go to the live server: anything
    else (a CDN, a font host) is blocked and recorded, and the test fails on it."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(live_server.url) or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.outside_requests = outside
    yield page
    context.close()
    _wait_for_requests_in_flight()
    assert not outside, f"pages tried to load from outside: {outside}"


def _wait_for_requests_in_flight() -> None:
    """Closing the page stops its live polls, but a poll the server has already taken
    still runs on a server thread's connection. The test database is then emptied with
    one TRUNCATE of every table, which takes their locks one by one: a request holding
    one table while wanting another that TRUNCATE already holds is a deadlock, and the
    teardown fails (seen once in a full run). So wait, on PostgreSQL, until no other
    connection to the test database is inside a statement or a transaction."""
    if connection.vendor != "postgresql":
        return

    def quiet() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            return cursor.fetchone()[0] == 0

    wait_until(quiet, timeout=15, message="the live server's requests to finish")


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login" not in url)


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Write test-artifacts/<name>.png. A modal dialog wants ``full_page=False``: its
    backdrop covers the viewport, not the whole scrolled page."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class ClusterDriver(threading.Thread):
    """Deploy worker + simulated Argo CD, in a thread, until stopped."""

    def __init__(self, repo_path: Path, workdir: Path):
        super().__init__(daemon=True)
        self.repo_path, self.workdir = repo_path, workdir
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def run(self):
        from apps.gitops.demo_cluster import DemoClusterReader
        from apps.gitops.git_writer import GitRemote, GitWriter
        from apps.gitops.locks import repository_lock
        from apps.releases.deploy import deploy_pending
        from apps.releases.rollout import follow_rollouts

        url = self.repo_path.as_uri()
        writer = GitWriter(
            GitRemote(
                url=url,
                branch="main",
                workdir=self.workdir,
                author_name="Slipway",
                author_email="slipway@example.com",
                timeout=20,
            ),
            lock=lambda: repository_lock(url, backend="file", lock_dir=self.workdir.parent),
        )
        reader = DemoClusterReader(repository=self.repo_path, branch="main", sync_delay=0.5)
        try:
            while not self.stopping.wait(0.3):
                try:
                    deploy_pending(writer=writer)
                    follow_rollouts(reader=reader, writer=writer)
                except Exception as exc:  # surfaced by the fixture
                    self.errors.append(exc)
                    return
        finally:
            connection.close()

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


@pytest.fixture
def cluster(tmp_path, gitops_remote, settings):
    """The deploy worker + simulated Argo CD: call ``cluster.start()`` after the test's own
    set-up (which moves releases directly and must not race the worker)."""
    settings.GITOPS_REPO_URL = gitops_remote.url
    settings.GITOPS_WORKDIR = tmp_path / "web-clone"
    driver = ClusterDriver(Path(gitops_remote.path), tmp_path / "driver" / "clone")
    yield driver
    if driver.is_alive():
        driver.stop()
    assert not driver.errors, driver.errors


os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
