"""Which state changes make which notifications, for whom, and that the outbox row
commits with the change or not at all."""

from __future__ import annotations

import pytest

from apps.accounts.roles import Role
from apps.audit.models import AuditEvent
from apps.audit.services import audited_atomic
from apps.metrics.selectors import poll_targets
from apps.metrics.services.slo import slo_judge
from apps.metrics.sources import Reading
from apps.notifications.events import Channel, EventKind
from apps.notifications.models import Delivery, Notification, TeamChannel
from apps.releases import services
from apps.releases.models import Release, ReleaseKind, ReleaseState
from apps.releases.notify import release_notify_auto_abort, waiting_recipients
from tests import factories

pytestmark = [pytest.mark.django_db]


def _recipients(kind: str) -> set[str]:
    return set(
        Delivery.objects.filter(notification__kind=kind).values_list("destination", flat=True)
    )


def _only(kind: str) -> Notification:
    (notification,) = Notification.objects.filter(kind=kind)
    return notification


def test_a_waiting_release_goes_only_to_people_who_can_fill_an_open_slot(people, service, staging):
    promotion = factories.pending_promotion(service, staging, requester=people["alice"])

    # prod needs one product and one compliance approval: every holder of those roles,
    # not the requester, not on-call, not the admin, not other engineers.
    assert _recipients(EventKind.RELEASE_WAITING) == {
        "pat@example.com",
        "paula@example.com",
        "carol@example.com",
        "dual@example.com",
    }
    notification = _only(EventKind.RELEASE_WAITING)
    assert notification.url == f"https://slipway.example.com/releases/{promotion.pk}/"
    assert "waits for your approval" in notification.title

    # pat fills the product slot: product reviewers can no longer help; dual still can
    # (as compliance), and pat has decided.
    services.release_approve(actor=people["pat"], release=promotion)
    names = {u.username for u in waiting_recipients(promotion)}
    assert names == {"carol", "dual"}


def test_other_teams_reviewers_and_on_call_are_not_told(people, service, staging):
    """Roles held for another team do not make someone a recipient: a product reviewer
    and an on-call engineer of risk-ml hear nothing of growth-ml's service."""
    rita = factories.make_user("rita", roles=set())
    factories.grant(rita, Role.PRODUCT_REVIEWER, "risk-ml")
    olga = factories.make_user("olga", roles=set())
    factories.grant(olga, Role.ONCALL, "risk-ml")
    assert service.owner_team.slug == "growth-ml"

    promotion = factories.pending_promotion(service, staging, requester=people["alice"])
    waiting = _recipients(EventKind.RELEASE_WAITING)
    assert "pat@example.com" in waiting and "rita@example.com" not in waiting

    factories.grant(rita, Role.PRODUCT_REVIEWER, "growth-ml")
    assert "rita" in {u.username for u in waiting_recipients(promotion)}

    factories.live_release(service, staging, 1, requester=people["alice"])
    factories.live_release(service, staging, 2, requester=people["bob"])
    services.release_rollback(
        actor=people["otto"], service=service, environment=staging, reason="v2 is slow"
    )
    told = _recipients(EventKind.ROLLBACK_STARTED)
    assert "otto@example.com" in told and "olga@example.com" not in told


def test_approved_and_rejected_reach_the_requester(people, service, staging, prod):
    first = factories.pending_promotion(service, staging, requester=people["alice"])
    services.release_approve(actor=people["pat"], release=first)
    assert not Notification.objects.filter(kind=EventKind.RELEASE_APPROVED).exists()
    services.release_approve(actor=people["carol"], release=first)
    assert _recipients(EventKind.RELEASE_APPROVED) == {"alice@example.com"}

    factories.release_to_live(first)
    second = factories.pending_promotion(service, staging, requester=people["bob"], version=2)
    services.release_reject(actor=people["carol"], release=second, comment="no model card")
    assert _recipients(EventKind.RELEASE_REJECTED) == {"bob@example.com"}
    assert "no model card" in _only(EventKind.RELEASE_REJECTED).text


def test_deploy_failed_and_rollbacks_reach_requester_oncall_and_the_team(people, service, staging):
    TeamChannel.objects.create(
        team="growth-ml", channel=Channel.SLACK, destination="https://chat.example.com/hook"
    )
    v1 = factories.live_release(service, staging, 1, requester=people["alice"])
    v2 = factories.live_release(service, staging, 2, requester=people["bob"])

    rollback = services.release_rollback(
        actor=people["otto"], service=service, environment=staging, reason="v2 is slow"
    )
    started = _only(EventKind.ROLLBACK_STARTED)
    assert _recipients(EventKind.ROLLBACK_STARTED) == {
        "otto@example.com",
        "bob@example.com",  # whose release is rolled back
        "https://chat.example.com/hook",  # growth-ml's channel
    }
    assert "v2 is slow" in started.text and started.team == "growth-ml"

    factories.release_to_live(rollback)
    assert _only(EventKind.ROLLBACK_LIVE).url.endswith(f"/releases/{rollback.pk}/")
    assert v1.pk != v2.pk

    v3 = factories.approved_release(service, staging, 3, requester=people["alice"])
    services.release_deploy_claim(release=v3)
    services.release_mark_failed(release=v3, message="ImagePullBackOff")
    failed = _only(EventKind.DEPLOY_FAILED)
    assert "ImagePullBackOff" in failed.text
    assert _recipients(EventKind.DEPLOY_FAILED) == {
        "alice@example.com",
        "otto@example.com",
        "https://chat.example.com/hook",
    }


def test_a_failed_deploys_restore_is_a_rollback_people_are_told_of(people, service, staging):
    """v2's files reached the repository, then it failed: the deployer commits the live
    v1 again, and that restore is announced like any rollback, with the failure."""
    TeamChannel.objects.create(
        team="growth-ml", channel=Channel.SLACK, destination="https://chat.example.com/hook"
    )
    v1 = factories.live_release(service, staging, 1, requester=people["alice"])
    v2 = factories.approved_release(service, staging, 2, requester=people["bob"])
    services.release_deploy_claim(release=v2)
    services.release_record_commit(release=v2, commit_sha="b" * 40)

    services.release_mark_failed(release=v2, message="CrashLoopBackOff")

    restore = Release.objects.get(kind=ReleaseKind.ROLLBACK, rolled_back_release=v2)
    assert restore.state == ReleaseState.APPROVED and restore.rollback_target == v1
    started = _only(EventKind.ROLLBACK_STARTED)
    assert started.url.endswith(f"/releases/{restore.pk}/")
    assert f"restore of live release #{v1.pk}" in started.text
    assert _recipients(EventKind.ROLLBACK_STARTED) == {
        "otto@example.com",  # on call for growth-ml
        "bob@example.com",  # whose release failed and is taken back
        "https://chat.example.com/hook",
    }
    assert _recipients(EventKind.DEPLOY_FAILED) >= {"bob@example.com", "otto@example.com"}
    # Audited as its creation and the break-glass move, by the deployer.
    moves = AuditEvent.objects.filter(target_type="release", target_id=str(restore.pk))
    assert [(e.action, e.actor_label) for e in moves.order_by("id")] == [
        ("release.restore", "system:deployer"),
        ("release.break_glass", "system:deployer"),
    ]

    factories.release_to_live(restore)
    assert _only(EventKind.ROLLBACK_LIVE).url.endswith(f"/releases/{restore.pk}/")


def test_a_restore_is_not_announced_when_the_failure_rolls_back(people, service, staging):
    factories.live_release(service, staging, 1, requester=people["alice"])
    v2 = factories.approved_release(service, staging, 2, requester=people["bob"])
    services.release_deploy_claim(release=v2)
    services.release_record_commit(release=v2, commit_sha="b" * 40)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), audited_atomic():
        services.release_mark_failed(release=v2, message="CrashLoopBackOff")
        assert Notification.objects.filter(kind=EventKind.ROLLBACK_STARTED).exists()
        raise Abort

    assert not Notification.objects.filter(kind=EventKind.ROLLBACK_STARTED).exists()
    assert not Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists()


def test_nothing_is_written_when_the_state_change_rolls_back(people, service, staging):
    promotion = factories.pending_promotion(service, staging, requester=people["alice"])
    before = Notification.objects.count()

    class Abort(Exception):
        pass

    with pytest.raises(Abort), audited_atomic():
        services.release_reject(actor=people["carol"], release=promotion, comment="no")
        assert Notification.objects.filter(kind=EventKind.RELEASE_REJECTED).exists()
        raise Abort

    assert Notification.objects.count() == before
    assert not Delivery.objects.filter(notification__kind=EventKind.RELEASE_REJECTED).exists()


def test_deliveries_are_sent_only_after_commit(
    people, service, staging, django_capture_on_commit_callbacks, celery_queue
):
    from tests.fixtures.broker import sent

    promotion = factories.pending_promotion(service, staging, requester=people["alice"])
    sent(celery_queue)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.release_reject(actor=people["carol"], release=promotion, comment="no")
        assert sent(celery_queue) == []  # nothing leaves before the commit
    (delivery,) = Delivery.objects.filter(notification__kind=EventKind.RELEASE_REJECTED)
    assert callbacks
    assert ("notifications.deliver", {"delivery_id": delivery.pk}) in sent(celery_queue)


def test_breach_started_and_recovered_link_to_the_dashboard(people, service, staging, settings):
    settings.METRICS_SLO_BREACH_POLLS = 1
    settings.METRICS_SLO_RECOVERY_POLLS = 1
    release = factories.live_release(service, staging, 1, requester=people["alice"])
    TeamChannel.objects.create(
        team="growth-ml",
        channel=Channel.WEBHOOK,
        destination="https://hooks.example.com/slo",
        events=[EventKind.BREACH_STARTED],  # this channel wants breaches, not recoveries
    )
    from django.utils import timezone

    live = poll_targets()
    now = timezone.now()

    def judge(value):
        reading = Reading("churn-model", "staging", "latency_p95_ms", value, now, 0)
        with audited_atomic():
            return slo_judge(live=live, readings={reading_key(reading): reading}, now=now)

    events, _ = judge(900.0)
    assert [e.kind for e in events] == ["breach"]
    breach = _only(EventKind.BREACH_STARTED)
    assert breach.url == "https://slipway.example.com/dashboards/churn-model/staging/"
    assert "900 ms over SLO 250 ms" in breach.text
    assert _recipients(EventKind.BREACH_STARTED) == {
        "otto@example.com",
        "https://hooks.example.com/slo",
    }
    assert breach.context["release_id"] == release.pk

    events, _ = judge(100.0)
    assert [e.kind for e in events] == ["recovery"]
    assert _recipients(EventKind.BREACH_RECOVERED) == {"otto@example.com"}


def reading_key(reading: Reading) -> tuple[str, str, str]:
    return (reading.service, reading.environment, reading.metric)


def test_an_automatic_abort_is_one_call_in_the_abort_transaction(people, service, staging):
    release = factories.live_release(service, staging, 1, requester=people["alice"])
    with audited_atomic():
        release_notify_auto_abort(release=release, reason="canary error rate 7 % > 1 %")
    abort = _only(EventKind.AUTO_ABORT)
    assert abort.text == "canary error rate 7 % > 1 %"
    assert _recipients(EventKind.AUTO_ABORT) == {"alice@example.com", "otto@example.com"}


def test_a_person_who_opted_out_of_an_event_gets_nothing(people, service, staging):
    from apps.notifications.services import preference_update

    everything_but_waiting = [k for k in EventKind.values if k != EventKind.RELEASE_WAITING]
    preference_update(actor=people["pat"], events=everything_but_waiting, email=True)
    preference_update(
        actor=people["carol"],
        events=EventKind.values,
        email=False,
        slack_url="https://chat.example.com/carol",
    )
    factories.pending_promotion(service, staging, requester=people["alice"])
    assert _recipients(EventKind.RELEASE_WAITING) == {
        "paula@example.com",
        "https://chat.example.com/carol",  # carol: Slack instead of e-mail
        "dual@example.com",
    }


@pytest.mark.parametrize("count", [10, 60])
def test_many_events_are_written_in_a_constant_number_of_queries(people, count):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.notifications.services import Draft, notification_emit_many

    TeamChannel.objects.create(
        team="growth-ml", channel=Channel.SLACK, destination="https://chat.example.com/hook"
    )
    oncall = (people["otto"], people["ada"])
    drafts = [
        Draft(EventKind.BREACH_STARTED, f"svc-{n} breaches", "/", users=oncall, team="growth-ml")
        for n in range(count)
    ]
    with audited_atomic(), CaptureQueriesContext(connection) as queries:
        written = notification_emit_many(drafts=drafts)
    assert len(written) == count
    assert Delivery.objects.count() == 3 * count  # otto, ada, the team's channel
    # preferences, team channels, one INSERT of events, one of deliveries
    assert len(queries) == 4, [q["sql"][:80] for q in queries]
