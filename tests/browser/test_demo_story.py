"""`make demo` from this checkout, played in the browser: it comes up on its embedded
default, shows the seeded services with live metrics from the simulator, and the story
(release a regressed version, see it breach, roll back, see it live) plays end to end.
It runs the real runner (web server, Celery worker with beat, filesystem broker) in a
subprocess with its own state folder."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import screenshot, sign_in
from tests.fixtures.network import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "slipway-demo"


def _demo_env(tmp_path) -> dict[str, str]:
    """The environment a user's shell gives the runner: none of the test run's settings
    (another SECRET_KEY would even change the audit chain's key)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "SLIPWAY_VAR_DIR")
    }
    env["SLIPWAY_DEMO_DIR"] = str(tmp_path / "demo")
    return env


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    env = _demo_env(tmp_path)
    env.update(
        {
            "PORT": str(port),
            "METRICS_POLL_SECONDS": "5",
            "STATUS_POLL_SECONDS": "1",
            "DEMO_SYNC_DELAY_SECONDS": "2",
        }
    )
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.demo"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def address() -> str | None:
            log_text = (tmp_path / "demo.log").read_text()
            if process.poll() is not None:
                pytest.fail("make demo exited at start:\n" + log_text[-3000:])
            match = re.search(r"running at (http://127\.0\.0\.1:\d+)/", log_text)
            return match.group(1) if match else None

        yield wait_until(
            address,
            timeout=300,
            interval=1,
            message=lambda: "make demo to come up:\n" + (tmp_path / "demo.log").read_text()[-3000:],
        )
    finally:
        code = process.poll()
        if code is None:
            # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
            os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=60)
        left = _group_members(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything the runner left behind
        log.close()
    assert code == 0, f"make demo exited with {code} on Ctrl-C"
    assert not left, f"Ctrl-C left these running: {left}"


def _group_members(group: int) -> list[str]:
    """Command lines of the live processes in process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":  # pgrp, not a zombie
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                members.append(cmdline.decode(errors="replace").strip())
    return members


def _until(page, check, *, timeout_s, reload_every_s=2.0):
    """Wait until ``check()`` holds, reloading the page before each look but the first."""
    looks = itertools.count()

    def reached():
        if next(looks):
            page.reload()
        return check()

    wait_until(
        reached,
        timeout=timeout_s,
        interval=reload_every_s,
        message=lambda: f"{page.url} to show it",
    )


def test_the_demo_story_plays_in_the_browser(demo, chromium, tmp_path):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        _play_the_story(page, demo)
        _play_the_faults(page, demo)
    finally:
        context.close()
    # The README's last step: the audit chain checks out, run the way a user runs it
    # (a bare `manage.py` would look at another database, or refuse without SECRET_KEY).
    verify = subprocess.run(
        [sys.executable, "-m", "apps.demo", "manage", "audit_verify"],
        cwd=ROOT,
        env=_demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit chain intact" in verify.stdout, verify.stdout


def _play_the_story(page, demo):
    page.set_default_timeout(20000)

    # The seeded fleet, with live figures from the simulator and the demo banner.
    sign_in(page, demo, "otto", PASSWORD)
    page.goto(f"{demo}/fleet/")
    assert "simulated" in page.inner_text(".banner.demo")
    _until(
        page,
        lambda: page.locator("table.fleet tbody tr", has_text="ms").count() >= 4,
        timeout_s=60,
    )
    # The simulator's figures are fresh: no stale banner while the demo runs as it should.
    assert page.locator(".banner.stale").count() == 0, page.inner_text(".banner.stale")
    screenshot(page, "demo-fleet")

    # alice releases churn-model v3 (the slow one) to staging.
    sign_in(page, demo, "alice", PASSWORD)
    page.goto(f"{demo}/releases/new/?service=churn-model")
    v3 = page.locator("select[name=model_version] option", has_text="v3 ")
    page.select_option("select[name=model_version]", v3.get_attribute("value"))
    page.select_option("select[name=environment]", "staging")
    page.fill("textarea[name=reason]", "v3: retrained on November data")
    page.click("button:has-text('Create draft')")
    page.click("button:has-text('Submit for approval')")
    page.wait_for_selector("#release-status .badge.state-live", timeout=60000)

    # otto sees the breach on top of the fleet, opens it, rolls back.
    sign_in(page, demo, "otto", PASSWORD)
    page.goto(f"{demo}/fleet/")
    first = page.locator("table.fleet tbody tr").first
    _until(
        page,
        lambda: "breach" in first.inner_text() and "churn-model" in first.inner_text(),
        timeout_s=90,
    )
    screenshot(page, "demo-fleet-breach")
    first.locator("a", has_text="churn-model").click()
    page.wait_for_selector(".chart .main-svg")  # charts drawn: the page's script is up
    screenshot(page, "demo-dashboard")
    page.click("button.btn.danger.big[data-open-dialog]")
    assert "v3" in page.inner_text("#rollback-dialog")
    page.fill("#rollback-dialog textarea", "p95 over SLO since v3")
    page.click("#rollback-dialog button[type=submit]")
    page.wait_for_selector("#rollback-progress .steps li.done:has-text('live')", timeout=60000)
    page.wait_for_selector("text=Release history")
    live_card = page.inner_text("aside")
    assert "churn-model v1" in live_card and "rollback" in live_card.lower()


def _release_to_staging(page, demo, service, version, reason):
    page.goto(f"{demo}/releases/new/?service={service}")
    option = page.locator("select[name=model_version] option", has_text=f"{version} ")
    page.select_option("select[name=model_version]", option.get_attribute("value"))
    page.select_option("select[name=environment]", "staging")
    page.fill("textarea[name=reason]", reason)
    page.click("button:has-text('Create draft')")
    page.click("button:has-text('Submit for approval')")


def _play_the_faults(page, demo):
    """fraud-model v2 and v3 are seeded with ``demo.fail=sync`` and ``=load``: released to
    staging, the release page says why each goes wrong, without waiting for the end."""
    sign_in(page, demo, "alice", PASSWORD)
    # A refused sync fails at once, with the simulated admission webhook's message.
    _release_to_staging(page, demo, "fraud-model", "v2", "v2: see a refused sync")
    page.wait_for_selector("#release-status .badge.state-failed", timeout=60000)
    status = page.inner_text("#release-status")
    assert "image is not signed (simulated: demo.fail=sync)" in status, status
    screenshot(page, "demo-failed-sync")
    # A model that cannot load: Degraded, and the page's own status poll shows the reason
    # while the release still waits out the grace period.
    _release_to_staging(page, demo, "fraud-model", "v3", "v3: see a model that cannot load")
    page.locator("#release-status", has_text="demo.fail=load").wait_for(timeout=60000)
    status = page.inner_text("#release-status")
    assert "Degraded" in status and "model failed to load" in status, status
    screenshot(page, "demo-failed-load")
