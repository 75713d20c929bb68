"""A real Celery worker SIGKILLed right after pushing a shadow evaluation's start commit
(``shadow.after_push``), before the database heard of it; then the next pass (what the
metrics poll runs): the commit is found by its Step-Key and recorded, never made twice.
The same for the end commit."""

from __future__ import annotations

import signal

import pytest

from apps.releases import services
from apps.releases.deploy import rollout_commit_pending
from apps.releases.models import ShadowEvaluation, ShadowState
from tests import factories
from tests.hardening.support import worker_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.parametrize("commit", ["start", "end"])
def test_a_worker_killed_after_pushing_an_evaluation_commit_duplicates_and_skips_nothing(
    commit,
    people,
    environments,
    service,
    gitops_remote,
    kube_api,
    broker,
    start_worker,
    make_git_writer,
):
    _, prod = environments
    prod.promotes_from = None
    prod.shadow_evaluation = "optional"
    prod.save()
    alice, pat, carol = people["alice"], people["pat"], people["carol"]
    factories.live_release(service, prod, 3, requester=alice, approvers=(pat, carol))
    candidate = services.release_submit(
        actor=alice, release=factories.draft_release(service, prod, 4, requester=alice)
    )
    writer = make_git_writer(gitops_remote.url)
    env = worker_env(gitops_remote, kube_api)
    evaluation, _ = services.shadow_evaluation_start(release=candidate, actor=alice)
    step = evaluation.step_name
    if commit == "end":
        rollout_commit_pending(writer=writer)
        evaluation = services.shadow_evaluation_stop(release=candidate, actor=alice)
        step = evaluation.end_step_name
    key = f"{candidate.uid}/{step}"
    before = gitops_remote.commit_count()

    doomed = start_worker("doomed", failpoints="shadow.after_push", **env)
    broker.send_task("releases.rollout_commits")  # what the start's (stop's) on_commit sends
    assert doomed.wait(90) == -signal.SIGKILL, doomed.output()

    pushed = gitops_remote.commits_with_trailer("Step-Key", key)
    assert len(pushed) == 1 and gitops_remote.commit_count() == before + 1
    evaluation.refresh_from_db()
    assert evaluation.pending == commit  # the database never heard of it

    rollout_commit_pending(writer=writer)  # the next pass
    evaluation.refresh_from_db()
    assert evaluation.pending == ""
    assert gitops_remote.commits_with_trailer("Step-Key", key) == pushed
    assert gitops_remote.commit_count() == before + 1
    if commit == "start":
        assert evaluation.state == ShadowState.RUNNING
        assert evaluation.start_commit_sha == pushed[0]
    else:
        assert evaluation.state == ShadowState.DONE
        assert evaluation.end_commit_sha == pushed[0]
    assert ShadowEvaluation.objects.count() == 1
