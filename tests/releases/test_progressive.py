"""Progressive releases, releases side: the plan on the release and in its digest, the
refusals before review, each step as its own commit (trailers, dedupe by Step-Key), the
people in the loop (pause, resume, abort, promote now, lift the hold) and a rollback
clicked during a step. Real git (bare repositories); the analysis is driven through the
same decision services the step controller calls (tests/metrics/test_rollout_controller.py
drives the controller against a real Prometheus)."""

from __future__ import annotations

import pytest

from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.render import METADATA_FILE, manifests_digest
from apps.releases import rollout as follow
from apps.releases import services
from apps.releases.deploy import (
    deploy_pending,
    rollout_commit,
    rollout_commit_pending,
)
from apps.releases.models import Release, ReleaseState, Rollout, RolloutState
from tests import factories

CANARY = {
    "strategy": "canary",
    "steps": [{"weight": 10, "observe": {"minutes": 5}}, {"weight": 50}],
}
FOLDER = "environments/staging/churn-model"


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def stable(alice, staging, service, writer):
    """v1 live in staging, through the real deploy path."""
    release = factories.approved_release(service, staging, 1, requester=alice)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    return services.release_mark_live(release=release)


def _candidate(alice, staging, service, plan=CANARY, version=2):
    release, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=factories.make_model_version(service.registered_model, version),
        reason=f"ship v{version}",
        rollout=plan,
    )
    return release


def _approved(alice, staging, service, plan=CANARY, version=2):
    release = _candidate(alice, staging, service, plan, version)
    return services.release_submit(actor=alice, release=release)


def _manifests(files):
    return {name: text for name, text in files.items() if name != METADATA_FILE}


def _trailers(message: str) -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in message.splitlines() if ": " in line and line[0].isupper()
    )


# --- the plan on the release ------------------------------------------------------------


def test_the_plan_is_stored_with_every_step_rendered_and_covered_by_the_digest(
    alice, staging, service, stable
):
    release = _candidate(alice, staging, service)
    assert release.rollout_plan["strategy"] == "canary"
    assert [s["weight"] for s in release.rollout_plan["steps"]] == [10, 50]
    assert len(release.rollout_files) == 2 and release.rollout_stable_id == stable.pk
    assert "httproute.yaml" in release.rollout_files[0]
    # Not the manifests' digest alone: the plan and each step's files are in it.
    assert release.digest != manifests_digest(release.rendered_files)
    other = _candidate(
        alice, staging, service, {"strategy": "canary", "steps": [{"weight": 20}]}, version=2
    )
    assert other.digest != release.digest
    assert manifests_digest(other.rendered_files) != ""  # rendered like any release


def test_the_default_plan_comes_from_the_service_config_and_the_request_overrides_it(
    alice, staging, service, stable
):
    service.default_config = {**service.default_config, "rollout": {"strategy": "blue-green"}}
    service.save()
    from_config = _candidate(alice, staging, service, plan=None)
    assert from_config.rollout_plan == {"strategy": "blue-green", "observe": {"minutes": 15}}
    overridden = _candidate(alice, staging, service, plan={"strategy": "all-at-once"})
    assert overridden.rollout_plan == {} and not overridden.is_progressive
    assert overridden.digest == manifests_digest(overridden.rendered_files)


def test_a_configured_plan_with_nothing_live_goes_out_all_at_once_but_an_asked_one_is_refused(
    alice, staging, service
):
    service.default_config = {**service.default_config, "rollout": {"strategy": "canary"}}
    service.save()
    first = _candidate(alice, staging, service, plan=None, version=1)
    assert not first.is_progressive
    with pytest.raises(DomainError, match="no stable version to share traffic with"):
        _candidate(alice, staging, service, version=1)


def test_an_approval_of_one_plan_does_not_apply_to_another(alice, pat, carol, service, prod):
    from apps.releases.models import Environment

    Environment.objects.filter(pk=prod.pk).update(promotes_from=None)
    prod.refresh_from_db()
    factories.live_release(service, prod, 1, requester=alice, approvers=[pat, carol])
    ten = _candidate(alice, prod, service)
    twenty = _candidate(
        alice, prod, service, {"strategy": "canary", "steps": [{"weight": 20}]}, version=2
    )
    services.release_submit(actor=alice, release=ten)
    with pytest.raises(Conflict, match="digest differs"):
        services.release_approve(actor=pat, release=ten, digest=twenty.digest)
    services.release_approve(actor=pat, release=ten, digest=ten.digest)


@pytest.mark.parametrize(
    ("plan", "field", "words"),
    [
        (
            {"strategy": "canary", "steps": [{"weight": 50}, {"weight": 20}]},
            "rollout.steps[1].weight",
            "does not rise",
        ),
        ({"strategy": "canary", "steps": [{"weight": 120}]}, "rollout.steps[0].weight", ""),
        ({"strategy": "rainbow"}, "rollout.strategy", "is not a strategy"),
    ],
)
def test_bad_plans_are_refused_by_field_with_a_sentence(
    alice, staging, service, stable, plan, field, words
):
    with pytest.raises(DomainError) as refused:
        _candidate(alice, staging, service, plan)
    assert field in refused.value.field_errors
    assert words in str(refused.value)


def test_a_runtime_that_cannot_mirror_is_refused_before_review(alice, staging):
    kserve = factories.make_service("fraud-model", runtime="kserve-sklearn", default_config={})
    factories.make_model_version("fraud-model", 2, source="s3://models/fraud-model/2")
    assert staging.kserve_mode == "knative"
    with pytest.raises(DomainError) as refused:
        _candidate(alice, staging, kserve, {"strategy": "shadow"})
    assert "cannot mirror" in str(refused.value)
    assert "rollout.strategy" in refused.value.field_errors
    staging.kserve_mode = "standard"
    staging.save()
    with pytest.raises(DomainError, match="Standard mode cannot split traffic"):
        _candidate(alice, staging, kserve, CANARY)


def test_the_api_refuses_a_bad_plan_with_a_400_naming_the_field(alice, staging, service, stable):
    from rest_framework.test import APIClient

    factories.make_model_version(service.registered_model, 2)
    client = APIClient()
    client.force_authenticate(alice)
    answer = client.post(
        "/api/v1/releases/",
        {
            "service": service.name,
            "environment": staging.name,
            "model_version": 2,
            "rollout": {"strategy": "canary", "steps": [{"weight": 30}, {"weight": 30}]},
        },
        format="json",
    )
    assert answer.status_code == 400, answer.content
    assert "rollout.steps[1].weight" in answer.json()["errors"]
    good = client.post(
        "/api/v1/releases/",
        {
            "service": service.name,
            "environment": staging.name,
            "model_version": 2,
            "rollout": CANARY,
        },
        format="json",
    )
    assert good.status_code == 201, good.content
    assert good.json()["rollout_plan"]["strategy"] == "canary"
    assert good.json()["rollout"] is None  # nothing under way before it deploys


# --- steps as commits -------------------------------------------------------------------


def test_each_step_is_one_commit_with_its_trailers_and_the_release_goes_live_after_the_last(
    alice, staging, service, stable, writer, gitops_remote
):
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    rollout = release.rollout
    assert (rollout.state, rollout.step, rollout.pending) == (RolloutState.RUNNING, 1, "")
    assert release.state == ReleaseState.DEPLOYING
    first = _trailers(gitops_remote.messages()[0])
    assert first["Release-Id"] == str(release.uid)
    assert first["Rollout-Step"] == "1/3" and first["Rollout-Weight"] == "10"
    assert first["Analysis-Verdict"] == "none"
    assert first["Step-Key"] == f"{release.uid}/step-1"
    assert _manifests(gitops_remote.files_at(FOLDER)) == release.rollout_files[0]

    # Argo CD healthy at a step does not make the release live.
    from apps.gitops.demo_cluster import DemoClusterReader

    reader = DemoClusterReader(repository=gitops_remote.path, sync_delay=0)
    follow.follow_rollouts(reader=reader, writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING

    for number in (1, 2):
        services.rollout_advance(rollout=rollout, number=number, verdict="pass")
        rollout_commit_pending(writer=writer)
        rollout.refresh_from_db()
        assert rollout.step == number + 1
        trailers = _trailers(gitops_remote.messages()[0])
        assert trailers["Analysis-Verdict"] == "pass"
        assert trailers["Rollout-Step"] == f"{number + 1}/3"
    assert rollout.state == RolloutState.PROMOTED
    assert _manifests(gitops_remote.files_at(FOLDER)) == release.rendered_files
    follow.follow_rollouts(reader=reader, writer=writer)
    release.refresh_from_db()
    stable.refresh_from_db()
    assert release.state == ReleaseState.LIVE and stable.state == ReleaseState.SUPERSEDED
    assert len(gitops_remote.commits_with_trailer("Release-Id", str(release.uid))) == 3


def test_a_worker_killed_after_the_push_resumes_without_a_duplicate_or_a_skip(
    alice, staging, service, stable, writer, gitops_remote
):
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    services.rollout_advance(rollout=rollout, number=1, verdict="pass")
    # The push lands; the worker dies before the database hears of it.
    rollout.refresh_from_db()
    release.refresh_from_db()
    files, message, trailers = rollout_commit(release, rollout, "step-2")
    pushed = writer.commit_release(
        environment="staging",
        service=service.name,
        files=files,
        message=message,
        trailers=trailers,
        step_key=f"{release.uid}/step-2",
    )
    count = gitops_remote.commit_count()
    rollout_commit_pending(writer=writer)  # the next poll, in a fresh worker
    rollout.refresh_from_db()
    assert gitops_remote.commit_count() == count
    assert (rollout.step, rollout.pending) == (2, "")
    assert rollout.steps.get(number=2).commit_sha == pushed.sha
    assert len(gitops_remote.commits_with_trailer("Step-Key", f"{release.uid}/step-2")) == 1


# --- people in the loop -----------------------------------------------------------------


def test_two_aborts_at_once_make_one_abort_commit_restoring_the_stable_files_and_a_hold(
    alice, otto, ada, staging, service, stable, writer, gitops_remote
):
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    with pytest.raises(Forbidden):
        services.rollout_abort(rollout=rollout, actor=alice, reason="looks off")
    with pytest.raises(DomainError, match="Say why"):
        services.rollout_abort(rollout=rollout, actor=otto, reason="")
    services.rollout_abort(rollout=rollout, actor=otto, reason="PSI alarm on the dashboard")
    services.rollout_abort(rollout=rollout, actor=ada, reason="same alarm")
    before = gitops_remote.commit_count()
    rollout_commit_pending(writer=writer)
    rollout_commit_pending(writer=writer)
    assert gitops_remote.commit_count() == before + 1
    trailers = _trailers(gitops_remote.messages()[0])
    assert trailers["Rollout-Step"] == "abort"
    assert trailers["Analysis-Verdict"] == "aborted by otto"
    assert _manifests(gitops_remote.files_at(FOLDER)) == stable.rendered_files
    rollout.refresh_from_db()
    release.refresh_from_db()
    stable.refresh_from_db()
    assert rollout.state == RolloutState.HELD and rollout.abort_reason.startswith("PSI")
    assert release.state == ReleaseState.FAILED and stable.state == ReleaseState.LIVE
    # Held: the same version is not released here again until the hold is lifted.
    with pytest.raises(Conflict, match="held in staging"):
        _candidate(alice, staging, service)
    with pytest.raises(DomainError, match="Say why"):
        services.rollout_lift_hold(rollout=rollout, actor=alice, reason=" ")
    services.rollout_lift_hold(rollout=rollout, actor=alice, reason="fixed the feature bug")
    assert _candidate(alice, staging, service).is_progressive


def test_pause_resume_and_promote_now_follow_roles(
    alice, otto, pat, staging, service, stable, writer, gitops_remote
):
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    with pytest.raises(Forbidden):
        services.rollout_pause(rollout=rollout, actor=pat)
    services.rollout_pause(rollout=rollout, actor=alice, reason="checking a dashboard")
    assert services.rollout_advance(rollout=rollout, number=1, verdict="pass") is None
    services.rollout_resume(rollout=rollout, actor=alice)
    with pytest.raises(Forbidden):
        services.rollout_promote_now(rollout=rollout, actor=alice, reason="hurry")
    services.rollout_promote_now(rollout=rollout, actor=otto, reason="incident fix, verified")
    rollout_commit_pending(writer=writer)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED and rollout.step == 3
    assert _trailers(gitops_remote.messages()[0])["Analysis-Verdict"] == "promoted by otto"
    assert _manifests(gitops_remote.files_at(FOLDER)) == release.rendered_files


def test_a_rollback_clicked_during_a_step_wins_and_the_rollout_commits_nothing_more(
    alice, otto, staging, service, writer, gitops_remote
):
    factories.live_release(service, staging, 1, requester=alice)
    old = Release.objects.get(state=ReleaseState.LIVE)
    factories.backdate_live(old)
    # v2 live, then v3 rolling out over it: a rollback goes back to v1.
    v2 = factories.approved_release(service, staging, 2, requester=alice)
    deploy_pending(writer=writer)
    v2.refresh_from_db()
    services.release_mark_live(release=v2)
    release = _approved(alice, staging, service, version=3)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    services.rollout_advance(rollout=rollout, number=1, verdict="pass")  # decided...
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="v2 errors in prod traffic"
    )
    deploy_pending(writer=writer)  # ...but the rollback is committed first
    rollout_commit_pending(writer=writer)
    release.refresh_from_db()
    rollout.refresh_from_db()
    rollback.refresh_from_db()
    assert release.state == ReleaseState.SUPERSEDED
    assert rollout.state == RolloutState.ABORTED and rollout.pending == ""
    assert _manifests(gitops_remote.files_at(FOLDER)) == rollback.rendered_files
    assert not gitops_remote.commits_with_trailer("Step-Key", f"{release.uid}/step-2")


def test_the_api_actions_answer_with_the_rollout_and_refuse_all_at_once_releases(
    alice, otto, staging, service, stable, writer
):
    from rest_framework.test import APIClient

    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    client = APIClient()
    client.force_authenticate(otto)
    url = f"/api/v1/releases/{release.pk}/rollout/abort/"
    first = client.post(url, {"reason": "bad"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(url, {"reason": "bad"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 200, first.content
    body = again.json()["rollout"]
    assert body["pending"] == "abort" and [s["weight"] for s in body["steps"]] == [10, 50, 100]
    client.force_authenticate(alice)
    assert client.post(url, {"reason": "x"}, format="json").status_code == 403
    refused = client.post(f"/api/v1/releases/{stable.pk}/rollout/pause/", {}, format="json")
    assert refused.status_code == 409 and "all-at-once" in refused.json()["detail"]


def test_the_release_page_shows_the_plan_the_verdicts_and_the_buttons_per_role(
    client, alice, otto, staging, service, stable, writer
):
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    services.rollout_record_verdict(
        rollout=rollout,
        number=1,
        verdict="inconclusive",
        message="inconclusive: needs 200 requests per side, candidate had 180",
        analysis={"checks": [{"name": "error_rate", "message": "needs 200 requests per side"}]},
    )
    client.force_login(otto)
    page = client.get(f"/releases/{release.pk}/status/").content.decode()
    assert 'data-testid="rollout-panel"' in page and "inconclusive" in page
    assert "needs 200 requests per side" in page
    assert 'data-testid="rollout-abort"' in page and 'data-testid="rollout-pause"' not in page
    client.force_login(alice)
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert 'data-testid="rollout-pause"' in page and 'data-testid="rollout-abort"' not in page
    answer = client.post(f"/releases/{release.pk}/rollout/pause/", {"reason": "look"})
    assert answer.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    client.force_login(otto)
    client.post(f"/releases/{release.pk}/rollout/abort/", {"reason": ""})
    rollout.refresh_from_db()
    assert rollout.pending == ""  # no reason, no abort: the page says why
    client.post(f"/releases/{release.pk}/rollout/abort/", {"reason": "error budget burnt"})
    rollout.refresh_from_db()
    assert rollout.pending == "abort"


def test_a_persons_abort_is_committed_by_its_own_task_without_waiting_for_the_poll(
    alice,
    otto,
    staging,
    service,
    stable,
    writer,
    gitops_remote,
    settings,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    from apps.releases.tasks import rollout_commits_task

    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.rollout_abort(rollout=rollout, actor=otto, reason="pager: error spike")
    assert len(callbacks) == 1  # sent once the decision commits
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.rollout_abort(rollout=rollout, actor=otto, reason="again")
    assert callbacks == []  # already pending: nothing new to send
    settings.GITOPS_REPO_URL = gitops_remote.url
    settings.GITOPS_WORKDIR = str(tmp_path / "task-clone")
    rollout_commits_task()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.HELD
    assert _trailers(gitops_remote.messages()[0])["Rollout-Step"] == "abort"


def test_the_aborted_step_still_synced_is_not_called_drift_but_a_real_change_is(
    alice, otto, staging, service, stable, writer, gitops_remote
):
    from apps.releases.models import ServiceEnvironment
    from apps.releases.repo_drift import check_live_folders

    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    step_sha = release.commit_sha
    services.rollout_abort(
        rollout=Rollout.objects.get(release=release), actor=otto, reason="error spike"
    )
    rollout_commit_pending(writer=writer)
    abort_sha = Rollout.objects.get(release=release).abort_commit_sha
    target = ServiceEnvironment.objects.get(service=service, environment=staging)
    # Argo CD has not synced the abort yet: the folder holds the step's files.
    ServiceEnvironment.objects.filter(pk=target.pk).update(synced_revision=step_sha)
    assert check_live_folders(writer=writer) == []
    ServiceEnvironment.objects.filter(pk=target.pk).update(synced_revision=abort_sha)
    assert check_live_folders(writer=writer) == [(target.pk, "clean")]
    # Someone edits the folder by hand after the abort: that is drift again.
    edited = gitops_remote.outside_commit(f"{FOLDER}/extra.yaml", "kind: ConfigMap\n", "hand")
    ServiceEnvironment.objects.filter(pk=target.pk).update(synced_revision=edited)
    assert check_live_folders(writer=writer) == [(target.pk, "new")]


def test_rollout_buttons_are_scoped_to_the_services_team(
    alice, staging, service, stable, writer, gitops_remote
):
    """On call and ML engineers of another team cannot steer this team's rollout, and
    the refusal names the team."""
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    olga = factories.make_user("olga", roles=set())
    factories.grant(olga, "oncall", "risk-ml")
    eve = factories.make_user("eve", roles=set())
    factories.grant(eve, "ml-engineer", "risk-ml")
    team = service.owner_team.slug
    with pytest.raises(Forbidden, match=f"belongs to team {team}"):
        services.rollout_abort(rollout=rollout, actor=olga, reason="not mine")
    with pytest.raises(Forbidden, match=f"belongs to team {team}"):
        services.rollout_pause(rollout=rollout, actor=eve, reason="not mine")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING and not rollout.pending

    factories.grant(olga, "oncall", team)
    services.rollout_abort(rollout=rollout, actor=olga, reason="error spike on the dashboard")
    rollout.refresh_from_db()
    assert rollout.pending == "abort"


def test_promote_now_waits_for_a_step_whose_commit_is_in_flight(
    alice, otto, staging, service, stable, writer, gitops_remote
):
    """Found by the rollout state machine: promote-now used to replace a decided step
    whose commit a dead worker had already pushed, leaving that commit unrecorded."""
    release = _approved(alice, staging, service)
    deploy_pending(writer=writer)
    rollout = Rollout.objects.get(release=release)
    services.rollout_advance(rollout=rollout, number=1, verdict="pass")
    rollout.refresh_from_db()
    release.refresh_from_db()
    files, message, trailers = rollout_commit(release, rollout, "step-2")
    writer.commit_release(  # pushed; the worker dies before recording it
        environment="staging",
        service=service.name,
        files=files,
        message=message,
        trailers=trailers,
        step_key=f"{release.uid}/step-2",
    )
    with pytest.raises(Conflict, match="Step 2 is being committed right now"):
        services.rollout_promote_now(rollout=rollout, actor=otto, reason="incident fix")
    rollout_commit_pending(writer=writer)  # the next poll records step 2
    services.rollout_promote_now(rollout=rollout, actor=otto, reason="incident fix")
    rollout_commit_pending(writer=writer)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED
    recorded = dict(rollout.steps.values_list("number", "commit_sha"))
    assert all(recorded.values()) and sorted(recorded) == [1, 2, 3]
