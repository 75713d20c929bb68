"""Shadow evaluation of a release waiting for approval: start, the commits and their
crash safety, stop, the end by another change, the drift check, authz, freeze, one per
target, the approval gate and the report's notification.

Real parts: PostgreSQL, a real bare GitOps repository and GitWriter. The analysis that
judges an evaluation runs against a real Prometheus in tests/metrics/test_shadow_evaluation.py;
here reports are stored through the same service the judge calls.
"""

from __future__ import annotations

import threading
from datetime import date, time, timedelta

import pytest
import yaml
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, DomainError
from apps.gitops.render import METADATA_FILE
from apps.notifications.events import EventKind
from apps.notifications.models import Notification
from apps.releases import services
from apps.releases.deploy import deploy_pending, release_commit_files, rollout_commit_pending
from apps.releases.models import (
    FreezeWindow,
    ReleaseState,
    ShadowEvaluation,
    ShadowState,
)
from apps.releases.repo_drift import check_live_folders
from apps.releases.shadow_commits import shadow_commit
from tests import factories

FOLDER = "environments/prod/churn-model"


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def prod_direct(prod):
    """prod taking releases directly (no promotion path), still reviewed by pat and
    carol, shadow evaluation optional."""
    prod.promotes_from = None
    prod.shadow_evaluation = "optional"
    prod.save()
    return prod


@pytest.fixture
def live(alice, pat, carol, service, prod_direct, writer):
    """v3 live in prod, committed to the real repository."""
    release = factories.approved_release(
        service, prod_direct, 3, requester=alice, approvers=(pat, carol)
    )
    deploy_pending(writer=writer)
    release.refresh_from_db()
    return services.release_mark_live(release=release)


@pytest.fixture
def candidate(alice, service, prod_direct, live):
    """v4 waiting for pat's and carol's approval."""
    release = factories.draft_release(service, prod_direct, 4, requester=alice, reason="v4")
    return services.release_submit(actor=alice, release=release)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _trailers(message: str) -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in message.splitlines() if ": " in line and line[0].isupper()
    )


def _manifests(files):
    return {name: text for name, text in files.items() if name != METADATA_FILE}


def _start(user, release, **body):
    return _api(user).post(
        f"/api/v1/releases/{release.pk}/shadow-evaluation/", body or {}, format="json"
    )


def _report(evaluation, verdict="pass", message="all checks pass"):
    """Store a final report the way the judge does (tests/metrics has the real analysis)."""
    now = timezone.now()
    return services.shadow_record_report(
        evaluation=evaluation,
        verdict=verdict,
        message=message,
        analysis={
            "verdict": verdict,
            "checks": [
                {
                    "name": "output_psi",
                    "candidate": 0.31 if verdict == "fail" else 0.02,
                    "stable": None,
                    "verdict": verdict,
                    "message": "output PSI",
                }
            ],
            "requests": {"candidate": 3000.0, "stable": 15000.0},
            "compared": 3000.0,
            "start": (now - timedelta(minutes=30)).isoformat(),
            "end": now.isoformat(),
        },
        requests=3000.0,
    )


# --- start and the start commit ------------------------------------------------------------


def test_an_ml_engineer_starts_it_and_the_mirror_is_one_commit_of_the_live_files_plus_the_candidate(
    alice, candidate, live, writer, gitops_remote
):
    before = gitops_remote.commit_count()
    answer = _start(alice, candidate, reason="check v4 on real traffic")
    assert answer.status_code == 201, answer.json()
    body = answer.json()["shadow_evaluation"]
    assert body["policy"] == "optional" and body["runs"][0]["state"] == "starting"
    rollout_commit_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=candidate)
    assert evaluation.state == ShadowState.RUNNING and evaluation.start_commit_sha
    assert gitops_remote.commit_count() == before + 1
    trailers = _trailers(gitops_remote.messages()[0])
    assert trailers["Release-Id"] == str(candidate.uid)
    assert trailers["Rollout-Step"] == "shadow-evaluation"
    assert trailers["Step-Key"] == f"{candidate.uid}/shadow-evaluation"
    assert trailers["Live-Release-Id"] == str(live.uid)
    assert trailers["Requested-By"] == "alice"
    files = gitops_remote.files_at(FOLDER)
    route = yaml.safe_load(files["httproute.yaml"])
    rule = route["spec"]["rules"][0]
    # Every answer still comes from the live release; the candidate gets a mirrored share.
    assert [b["name"] for b in rule["backendRefs"]] == ["churn-model-stable"]
    assert rule["backendRefs"][0]["weight"] == 100
    mirror = rule["filters"][0]
    assert mirror["type"] == "RequestMirror"
    assert mirror["requestMirror"]["backendRef"]["name"] == "churn-model-candidate"
    assert mirror["requestMirror"]["percent"] == evaluation.mirror_percent == 10
    # The metadata file is the live release's: it is what serves.
    assert files[METADATA_FILE] == release_commit_files(live)[METADATA_FILE]
    live.refresh_from_db()
    candidate.refresh_from_db()
    assert live.state == ReleaseState.LIVE and candidate.state == ReleaseState.PENDING_APPROVAL
    started = AuditEvent.objects.get(action="shadow.start")
    assert started.actor_label == "alice" and started.after["reason"] == "check v4 on real traffic"


def test_settings_come_from_the_shadow_evaluation_key_of_the_configuration(
    alice, candidate, prod_direct, writer
):
    prod_direct.config_overrides = {
        "shadow_evaluation": {"mirror_percent": 25, "observe": {"minutes": 5, "requests": 900}}
    }
    prod_direct.save()
    evaluation, created = services.shadow_evaluation_start(release=candidate, actor=alice)
    assert created
    assert (evaluation.mirror_percent, evaluation.observe_minutes) == (25, 5)
    assert evaluation.observe_requests == 900
    prod_direct.config_overrides = {"shadow_evaluation": {"mirror_percent": 0}}
    prod_direct.save()
    services.shadow_evaluation_stop(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    with pytest.raises(DomainError) as refused:
        services.shadow_evaluation_start(release=candidate, actor=alice)
    assert "shadow_evaluation.mirror_percent" in refused.value.field_errors


def test_a_second_start_is_the_same_evaluation_and_one_commit(
    alice, candidate, writer, gitops_remote
):
    before = gitops_remote.commit_count()
    assert _start(alice, candidate).status_code == 201
    again = _start(alice, candidate)
    assert again.status_code == 200
    rollout_commit_pending(writer=writer)
    rollout_commit_pending(writer=writer)
    assert ShadowEvaluation.objects.filter(release=candidate).count() == 1
    assert gitops_remote.commit_count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_two_starts_at_once_make_one_evaluation_and_one_commit(
    alice, pat, carol, service, prod_direct, writer, gitops_remote
):
    """Two people (or a double click) at the same instant, on two connections."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks")
    live = factories.approved_release(
        service, prod_direct, 3, requester=alice, approvers=(pat, carol)
    )
    deploy_pending(writer=writer)
    live.refresh_from_db()
    services.release_mark_live(release=live)
    first = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod_direct, 4, requester=alice)
    )
    second = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod_direct, 5, requester=alice)
    )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def start(release):
        from django.db import connections

        try:
            barrier.wait()
            _, created = services.shadow_evaluation_start(release=release, actor=alice)
            outcomes.append(f"{release.pk}:{'created' if created else 'same'}")
        except Conflict as exc:
            outcomes.append(f"{release.pk}:409:{exc.message}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=start, args=(r,)) for r in (first, first, second, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 4, outcomes
    assert sum(o.endswith(":created") for o in outcomes) == 1, outcomes
    winner = ShadowEvaluation.objects.get()
    loser = second if winner.release_id == first.pk else first
    refusals = [o for o in outcomes if o.startswith(f"{loser.pk}:409")]
    assert len(refusals) == 2 and all(f"#{winner.release_id}" in o for o in refusals), outcomes
    before = gitops_remote.commit_count()
    rollout_commit_pending(writer=writer)
    assert gitops_remote.commit_count() == before + 1


def test_one_evaluation_per_target_names_the_other_one(alice, bob, candidate, service, prod_direct):
    other = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod_direct, 5, requester=alice)
    )
    services.shadow_evaluation_start(release=candidate, actor=alice)
    answer = _start(bob, other)
    assert answer.status_code == 409
    detail = answer.json()["detail"]
    assert f"Release #{candidate.pk}'s shadow evaluation is starting" in detail
    assert "started by alice" in detail


@pytest.fixture
def bob(people):
    return people["bob"]


def test_another_teams_ml_engineer_is_refused_and_nothing_starts(candidate, people):
    mallory = factories.make_user("mallory", roles=set())
    factories.grant(mallory, Role.ML_ENGINEER, "risk-ml")
    answer = _start(mallory, candidate)
    assert answer.status_code == 403
    assert "belongs to team growth-ml" in answer.json()["detail"]
    for reviewer in ("pat", "otto"):
        assert _start(people[reviewer], candidate).status_code == 403
    assert not ShadowEvaluation.objects.exists()


def test_refused_during_a_freeze_with_why_and_until(alice, candidate, prod_direct):
    today = timezone.now().date()
    FreezeWindow.objects.create(
        environment=prod_direct,
        reason="Quarter-end close",
        time_zone="UTC",
        start_date=today - timedelta(days=1),
        start_time=time(0, 0),
        end_date=today + timedelta(days=1),
        end_time=time(6, 0),
    )
    answer = _start(alice, candidate)
    assert answer.status_code == 409
    body = answer.json()
    assert "Quarter-end close" in body["detail"] and "until" in body["detail"]
    assert body["freeze"]["frozen"] is True and body["freeze"]["until"]
    assert not ShadowEvaluation.objects.exists()
    assert date.today()  # the window is built from the database's clock, not the test's


def test_refused_while_a_deploy_of_the_target_is_under_way(
    alice, pat, carol, candidate, service, prod_direct
):
    moving = factories.approved_release(
        service, prod_direct, 5, requester=alice, approvers=(pat, carol)
    )
    answer = _start(alice, candidate)
    assert answer.status_code == 409
    assert f"Release #{moving.pk} of churn-model is approved in prod" in answer.json()["detail"]


def test_refused_before_review_where_the_runtime_cannot_mirror(alice, people, prod_direct):
    kserve = factories.make_service("iris", runtime="kserve-sklearn", default_config={})
    factories.make_model_version("iris", 1, source="s3://models/iris/1")
    prod_direct.kserve_mode = "knative"
    prod_direct.shadow_evaluation = "required"
    prod_direct.save()
    draft = factories.draft_release(kserve, prod_direct, 1, requester=alice)
    with pytest.raises(DomainError) as refused:
        services.release_submit(actor=alice, release=draft)
    text = refused.value.message
    assert "prod requires a shadow evaluation before approval" in text
    assert "Knative routes each request to exactly one revision" in text
    draft.refresh_from_db()
    assert draft.state == ReleaseState.DRAFT


# --- stop, crash safety, the end by another change -----------------------------------------


def test_stop_puts_the_live_files_back_byte_for_byte(alice, candidate, live, writer, gitops_remote):
    services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    answer = _api(alice).post(
        f"/api/v1/releases/{candidate.pk}/shadow-evaluation/stop/",
        {"reason": "enough"},
        format="json",
    )
    assert answer.status_code == 200
    assert (
        _api(alice)
        .post(f"/api/v1/releases/{candidate.pk}/shadow-evaluation/stop/", {}, format="json")
        .status_code
        == 200
    )
    rollout_commit_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=candidate)
    assert evaluation.state == ShadowState.DONE and evaluation.end_commit_sha
    assert gitops_remote.files_at(FOLDER) == release_commit_files(live)
    trailers = _trailers(gitops_remote.messages()[0])
    assert trailers["Step-Key"] == f"{candidate.uid}/shadow-evaluation-end"
    assert AuditEvent.objects.filter(action="shadow.stop", after__reason="enough").exists()
    # A new run of the same release has keys of its own.
    services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    assert _trailers(gitops_remote.messages()[0])["Step-Key"] == (
        f"{candidate.uid}/shadow-evaluation-2"
    )


@pytest.mark.parametrize("name", ["start", "end"])
def test_a_worker_killed_between_push_and_record_neither_duplicates_nor_skips(
    name, alice, candidate, writer, gitops_remote
):
    """The decided commit reaches the remote, the worker dies before the database hears
    of it (as tests/releases/test_rollout_machine.py kills its workers): the next pass
    finds it by its Step-Key and only records it."""
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    if name == "end":
        rollout_commit_pending(writer=writer)
        evaluation = services.shadow_evaluation_stop(release=candidate, actor=alice)
    evaluation = ShadowEvaluation.objects.get(pk=evaluation.pk)
    files, message, trailers = shadow_commit(evaluation, evaluation.pending)
    step = evaluation.step_name if name == "start" else evaluation.end_step_name
    pushed = writer.commit_release(
        environment="prod",
        service="churn-model",
        files=files,
        message=message,
        trailers=trailers,
        step_key=f"{candidate.uid}/{step}",
    ).sha
    before = gitops_remote.commit_count()
    rollout_commit_pending(writer=writer)
    rollout_commit_pending(writer=writer)
    assert gitops_remote.commit_count() == before
    evaluation.refresh_from_db()
    assert evaluation.pending == ""
    recorded = evaluation.start_commit_sha if name == "start" else evaluation.end_commit_sha
    assert recorded == pushed
    assert len(gitops_remote.commits_with_trailer("Step-Key", f"{candidate.uid}/{step}")) == 1


def test_a_deploy_during_the_evaluation_ends_it_without_an_end_commit(
    alice, pat, carol, candidate, service, prod_direct, writer, gitops_remote
):
    services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    # Another release of the target is approved and deployed meanwhile (optional policy:
    # nothing holds it): its commit replaces the folder.
    other = factories.approved_release(
        service, prod_direct, 5, requester=alice, approvers=(pat, carol)
    )
    deploy_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=candidate)
    assert evaluation.state == ShadowState.ENDED and not evaluation.end_commit_sha
    assert f"release #{other.pk}" in evaluation.message
    other.refresh_from_db()
    assert _manifests(gitops_remote.files_at(FOLDER)) == other.rendered_files
    count = gitops_remote.commit_count()
    rollout_commit_pending(writer=writer)
    assert gitops_remote.commit_count() == count  # no end commit over the new release
    ended = AuditEvent.objects.filter(action="shadow.ended").latest("id")
    assert ended.after["commit"] is None


def test_the_evaluated_candidate_gets_its_own_commit_when_approved(
    alice, pat, carol, candidate, writer, gitops_remote
):
    """The evaluation's commits carry the candidate's Release-Id: the deployer must not
    take them for the candidate's own commit (it looks for one without a Step-Key)."""
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    _report(ShadowEvaluation.objects.get(pk=evaluation.pk))
    rollout_commit_pending(writer=writer)
    services.release_approve(actor=pat, release=candidate)
    services.release_approve(actor=carol, release=candidate)
    deploy_pending(writer=writer)
    candidate.refresh_from_db()
    evaluation.refresh_from_db()
    assert candidate.state == ReleaseState.DEPLOYING
    assert candidate.commit_sha not in (evaluation.start_commit_sha, evaluation.end_commit_sha)
    assert _manifests(gitops_remote.files_at(FOLDER)) == candidate.rendered_files
    assert "Step-Key" not in _trailers(gitops_remote.messages()[0])


def test_the_drift_check_does_not_call_the_evaluation_drift(
    alice, candidate, live, writer, gitops_remote
):
    from apps.releases.models import ServiceEnvironment

    services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=candidate)
    target = ServiceEnvironment.objects.get(service=live.service, environment=live.environment)
    ServiceEnvironment.objects.filter(pk=target.pk).update(
        synced_revision=evaluation.start_commit_sha
    )
    assert [outcome for _, outcome in check_live_folders(writer=writer)] == ["clean"]
    # After the end commit: skipped until Argo CD syncs it, clean once it has.
    services.shadow_evaluation_stop(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    evaluation.refresh_from_db()
    assert check_live_folders(writer=writer) == []
    ServiceEnvironment.objects.filter(pk=target.pk).update(
        synced_revision=evaluation.end_commit_sha
    )
    assert [o for _, o in check_live_folders(writer=writer)] == ["clean"]
    live.refresh_from_db()
    assert live.state == ReleaseState.LIVE


# --- the approval gate, the report, the notification ---------------------------------------


def test_under_required_approval_waits_for_a_passing_report(
    alice, pat, carol, service, prod_direct, live, writer
):
    prod_direct.shadow_evaluation = "required"
    prod_direct.save()
    release = factories.draft_release(service, prod_direct, 4, requester=alice)
    release = services.release_submit(actor=alice, release=release)
    # Started with the submission, by the policy.
    evaluation = ShadowEvaluation.objects.get(release=release)
    assert evaluation.started_by_system == "shadow-evaluation"
    answer = _api(pat).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    assert answer.status_code == 409
    assert "requires a shadow evaluation before approval" in answer.json()["detail"]
    assert "still running" in answer.json()["detail"]
    rollout_commit_pending(writer=writer)
    evaluation.refresh_from_db()
    _report(evaluation, "inconclusive", "not enough mirrored requests (12 of 1000)")
    with pytest.raises(Conflict, match="inconclusive"):
        services.release_approve(actor=pat, release=release)
    rollout_commit_pending(writer=writer)
    second, _ = services.shadow_evaluation_start(release=release, actor=alice)
    rollout_commit_pending(writer=writer)
    second.refresh_from_db()
    _report(second, "pass")
    services.release_approve(actor=pat, release=release)
    services.release_approve(actor=carol, release=release)
    release.refresh_from_db()
    assert release.state == ReleaseState.APPROVED
    # Each approval keeps the report it was given on.
    for approval in release.approvals.all():
        assert approval.evidence["shadow"]["verdict"] == "pass"
        assert approval.evidence["shadow"]["run"] == 2


def test_a_failing_report_blocks_approval_but_not_rejection(alice, pat, carol, candidate, writer):
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    _report(ShadowEvaluation.objects.get(pk=evaluation.pk), "fail", "output PSI 0.31 over 0.2")
    answer = _api(pat).post(f"/api/v1/releases/{candidate.pk}/approve/", {}, format="json")
    assert answer.status_code == 409
    assert "shadow evaluation (run 1) failed: output PSI 0.31 over 0.2" in answer.json()["detail"]
    assert not candidate.approvals.exists()
    services.release_reject(actor=carol, release=candidate, comment="outputs shifted")
    candidate.refresh_from_db()
    assert candidate.state == ReleaseState.REJECTED
    rejection = candidate.approvals.get()
    assert rejection.evidence["shadow"]["verdict"] == "fail"


def test_the_report_reaches_the_reviewers_and_the_release_resource(
    alice, pat, carol, candidate, writer
):
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    _report(ShadowEvaluation.objects.get(pk=evaluation.pk), "pass")
    notification = Notification.objects.get(kind=EventKind.SHADOW_REPORT)
    assert "passed" in notification.title
    recipients = set(notification.deliveries.values_list("user__username", flat=True))
    assert {"pat", "carol", "alice"} <= recipients
    rollout_commit_pending(writer=writer)
    body = _api(pat).get(f"/api/v1/releases/{candidate.pk}/").json()["shadow_evaluation"]
    current = body["current"]
    assert current["verdict"] == "pass" and current["state"] == "done"
    assert current["requests"] == {"candidate": 3000.0, "stable": 15000.0}
    assert current["start_commit"] and current["end_commit"]
    assert current["rows"][0]["label"] == "Output PSI (shadow against production)"
    assert body["approval_blocked"] is None
    # Kept with the release: the evidence pack has it, commits included.
    from apps.evidence.build import evidence_pack

    kept = evidence_pack(release=candidate)["sections"]["shadow_evaluations"]
    assert [(r["run"], r["verdict"]) for r in kept] == [(1, "pass")]
    assert kept[0]["start_commit"] == current["start_commit"]
    assert kept[0]["end_commit"] == current["end_commit"]


def test_the_release_page_shows_it_and_its_buttons(alice, pat, candidate, writer):
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/releases/{candidate.pk}/").content.decode()
    assert 'data-testid="shadow-evaluation"' in page and 'data-testid="shadow-start"' in page
    answer = browser.post(
        f"/releases/{candidate.pk}/shadow-evaluation/start/", {"reason": "before review"}
    )
    assert answer.status_code == 302
    rollout_commit_pending(writer=writer)
    fragment = browser.get(f"/releases/{candidate.pk}/status/").content.decode()
    assert "running" in fragment and 'data-testid="shadow-stop"' in fragment
    assert 'data-testid="shadow-time-left"' in fragment
    reviewer = Client()
    reviewer.force_login(pat)
    seen = reviewer.get(f"/releases/{candidate.pk}/status/").content.decode()
    assert 'data-testid="shadow-evaluation"' in seen and 'data-testid="shadow-stop"' not in seen


def test_bad_settings_are_refused_when_the_configuration_is_saved(service, prod_direct):
    from apps.releases.config_check import environment_config_problems

    problems = environment_config_problems(
        config_overrides={"shadow_evaluation": {"mirror_percent": 200}},
        environment_id=prod_direct.pk,
    )
    assert len(problems) == 1 and "shadow_evaluation.mirror_percent" in problems[0]
    assert not environment_config_problems(
        config_overrides={"shadow_evaluation": {"mirror_percent": 20, "observe": {"minutes": 5}}},
        environment_id=prod_direct.pk,
    )


def test_the_status_poll_keeps_the_live_release_live_and_sees_a_real_change_as_drift(
    alice, candidate, live, writer, gitops_remote, kube_api
):
    """Argo CD syncs the evaluation's commit, Healthy: the live release stays live and the
    folder is not drift; someone editing the folder during the evaluation still is."""
    from apps.gitops.argo import ArgoStatusReader
    from apps.releases import rollout as follow
    from apps.releases.models import ServiceEnvironment
    from tests.releases.test_drift import _push_as_someone_else

    reader = ArgoStatusReader(kube_api.api_client(), namespace="argocd", timeout=5)
    app = "churn-model-prod"
    services.shadow_evaluation_start(release=candidate, actor=alice)
    rollout_commit_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=candidate)
    kube_api.set_application(
        app, sync="Synced", revision=evaluation.start_commit_sha, health="Healthy"
    )
    follow.follow_rollouts(reader=reader, writer=writer)
    live.refresh_from_db()
    target = ServiceEnvironment.objects.get(service=live.service, environment=live.environment)
    assert live.state == ReleaseState.LIVE
    assert target.synced_revision == evaluation.start_commit_sha and not target.drifted

    sha = _push_as_someone_else(
        gitops_remote,
        {f"{FOLDER}/service.yaml": "kind: Service\n"},
        "hotfix straight into prod",
    )
    kube_api.set_application(app, sync="Synced", revision=sha, health="Healthy")
    follow.follow_rollouts(reader=reader, writer=writer)
    target.refresh_from_db()
    assert target.drifted and target.drift_files["changed"] == ["service.yaml"]


def test_a_required_evaluation_that_found_the_target_busy_starts_once_it_is_free(
    alice, service, prod_direct, live, writer
):
    from apps.metrics.services.shadow import shadow_evaluations_step

    prod_direct.shadow_evaluation = "required"
    prod_direct.save()
    first = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod_direct, 4, requester=alice)
    )
    second = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod_direct, 5, requester=alice)
    )
    assert ShadowEvaluation.objects.filter(release=first).exists()
    assert not ShadowEvaluation.objects.filter(release=second).exists()  # one per target
    answer = _api(factories.make_user("pat")).post(
        f"/api/v1/releases/{second.pk}/approve/", {}, format="json"
    )
    assert answer.status_code == 409 and "none has been judged yet" in answer.json()["detail"]
    rollout_commit_pending(writer=writer)
    shadow_evaluations_step()
    assert not ShadowEvaluation.objects.filter(release=second).exists()  # still busy
    services.shadow_evaluation_stop(release=first, actor=alice)
    rollout_commit_pending(writer=writer)
    shadow_evaluations_step()
    owed = ShadowEvaluation.objects.get(release=second)
    assert owed.started_by_system == "shadow-evaluation" and owed.state == ShadowState.STARTING


def test_a_release_rejected_before_its_start_was_recorded_gets_the_live_files_back(
    alice, carol, candidate, live, writer, gitops_remote
):
    """The start was pushed by a worker that died before recording it, then the release
    was rejected: the next pass commits the end, not nothing."""
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    files, message, trailers = shadow_commit(evaluation, "start")
    writer.commit_release(
        environment="prod",
        service="churn-model",
        files=files,
        message=message,
        trailers=trailers,
        step_key=f"{candidate.uid}/shadow-evaluation",
    )
    services.release_reject(actor=carol, release=candidate, comment="not this quarter")
    rollout_commit_pending(writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.state == ShadowState.DONE and evaluation.end_commit_sha
    assert gitops_remote.files_at(FOLDER) == release_commit_files(live)


def test_a_seldon_model_is_mirrored_by_its_experiment(alice, pat, carol, prod_direct, writer):
    """Seldon Core 2: the live Model unchanged in spec, the candidate as
    ``<service>-candidate``, and an Experiment whose only candidate is the live Model at
    100 with ``mirror`` to the candidate (the scheduler's rules: the default is a
    candidate, every name once)."""
    seldon = factories.make_service(
        "fraud-model", runtime="seldon", default_config={"storage_uri": "gs://models/fraud/1"}
    )
    live = factories.approved_release(
        seldon, prod_direct, 1, requester=alice, approvers=(pat, carol)
    )
    deploy_pending(writer=writer)
    live.refresh_from_db()
    services.release_mark_live(release=live)
    candidate = services.release_submit(
        actor=alice, release=factories.draft_release(seldon, prod_direct, 2, requester=alice)
    )
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    experiment = yaml.safe_load(evaluation.files["experiment.yaml"])
    assert experiment["kind"] == "Experiment"
    assert experiment["spec"]["default"] == "fraud-model"
    assert experiment["spec"]["candidates"] == [{"name": "fraud-model", "weight": 100}]
    assert experiment["spec"]["mirror"] == {"name": "fraud-model-candidate", "percent": 10}
    model = yaml.safe_load(evaluation.files["model.yaml"])
    assert model["spec"] == yaml.safe_load(live.rendered_files["model.yaml"])["spec"]
    rollout_commit_pending(writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.state == ShadowState.RUNNING
