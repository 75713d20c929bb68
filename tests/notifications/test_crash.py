"""A real Celery worker SIGKILLed in the middle of a delivery, then a fresh worker with
its beat: 0 notifications lost and 0 acted on twice by a receiver that dedupes by the
event id (``Idempotency-Key``).

The first worker runs with SLIPWAY_FAILPOINTS naming a point of
``apps.notifications.services.delivery_attempt``: ``notifications.before_send`` (claimed,
nothing sent) or ``notifications.after_send`` (the receiver has it, the database does
not know). Its other messages stay unacked in Redis (visibility timeout: an hour); the
fresh worker's sweep finds the first attempts that never happened after the grace
period and the dead worker's claim once it runs out, and sends them. After
``after_send`` the receiver sees the killed delivery twice, with one event id, and acts
on it once: the at-least-once + dedupe key contract of docs/notifications.md.
"""

from __future__ import annotations

import contextlib
import signal

import pytest

from apps.audit.services import audited_atomic
from apps.notifications.events import Channel, DeliveryState, EventKind
from apps.notifications.models import Delivery, TeamChannel
from apps.notifications.services import notification_emit
from tests.hardening.support import PYTHON, Process, child_env
from tests.notifications.conftest import WEBHOOK_SECRET
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial]

BROKER_URL = "redis://127.0.0.1:6379/12"  # DB 12: this test's own
EVENTS = 3


@pytest.fixture
def redis_broker(transactional_db):
    """Redis DB 12, empty at the start and the end; a Celery app that sends to it."""
    import redis
    from celery import Celery

    from tests.services import need_service, redis_available

    need_service("Redis", redis_available(), "start redis-server on 127.0.0.1:6379")
    db = redis.Redis.from_url(BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    db.flushdb()
    app = Celery("notifications-sender", broker=BROKER_URL, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    try:
        yield app
    finally:
        app.close()
        with contextlib.suppress(Exception):
            db.flushdb()


@pytest.fixture
def workers(transactional_db, redis_broker, tmp_path):
    """start(name, failpoints=..., beat=...) -> a real ``celery worker`` (solo pool: the
    failpoint's SIGKILL kills the worker itself); each stopped by PID at the end."""
    started: list[Process] = []

    def start(name: str, *, failpoints: str = "", beat: bool = False) -> Process:
        argv = [PYTHON, "-m", "celery", "-A", "controlplane", "worker", "--pool=solo"]
        argv += ["-n", f"{name}@%h", "--without-heartbeat", "--without-gossip"]
        argv += ["--without-mingle", "-l", "INFO"]
        if beat:
            argv += ["-B", "--schedule", str(tmp_path / f"beat-{name}")]
        env = child_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE="tests.notifications.worker_settings",
            CELERY_BROKER_URL=BROKER_URL,
            NOTIFICATIONS_WEBHOOK_SECRET=WEBHOOK_SECRET,
            NOTIFICATIONS_TIMEOUT_SECONDS="5",
            NOTIFICATIONS_LEASE_SECONDS="3",
            NOTIFICATIONS_SWEEP_SECONDS="1",
            NOTIFICATIONS_SWEEP_GRACE_SECONDS="1",
        )
        if failpoints:
            env["SLIPWAY_FAILPOINTS"] = failpoints
        process = Process(argv, env=env, log=tmp_path / f"worker-{name}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.mark.parametrize(
    ("point", "sends_of_killed"),
    [("notifications.before_send", 1), ("notifications.after_send", 2)],
)
def test_a_worker_killed_mid_delivery_loses_and_duplicates_nothing(
    point, sends_of_killed, receiver, redis_broker, workers
):
    TeamChannel.objects.create(team="growth-ml", channel=Channel.WEBHOOK, destination=receiver.url)
    with audited_atomic():
        for n in range(EVENTS):
            notification_emit(
                kind=EventKind.DEPLOY_FAILED, title=f"event {n}", path="/", team="growth-ml"
            )
    deliveries = list(Delivery.objects.order_by("pk"))
    assert len(deliveries) == EVENTS

    doomed = workers("doomed", failpoints=point)
    for delivery in deliveries:  # what each emit's on-commit sends
        redis_broker.send_task("notifications.deliver", kwargs={"delivery_id": delivery.pk})
    assert doomed.wait(120) == -signal.SIGKILL, doomed.output()

    (killed,) = Delivery.objects.filter(state=DeliveryState.SENDING)
    assert killed.attempts == 1
    assert len(receiver.requests) == sends_of_killed - 1  # after_send: it got there

    fresh = workers("fresh", beat=True)

    def all_delivered():
        if not fresh.alive():
            raise AssertionError("the fresh worker died:\n" + fresh.output())
        states = set(Delivery.objects.values_list("state", flat=True))
        return states == {DeliveryState.DELIVERED}

    wait_until(all_delivered, timeout=90, message=lambda: "every delivery\n" + fresh.output())

    event_ids = [str(d.notification.event_id) for d in deliveries]
    # 0 lost: every event reached the receiver; 0 duplicates: each was acted on once.
    assert sorted(receiver.acted) == sorted(event_ids)
    sends = [r.headers["idempotency-key"] for r in receiver.requests]
    killed_id = str(killed.notification.event_id)
    assert sends.count(killed_id) == sends_of_killed
    assert all(sends.count(e) == 1 for e in event_ids if e != killed_id)
    assert receiver.rejected_signatures == 0
    killed.refresh_from_db()
    assert killed.attempts == 2 and killed.last_error == ""
