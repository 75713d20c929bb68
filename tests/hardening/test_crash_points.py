"""A real Celery worker SIGKILLed at each named point of the deploy path, then a fresh
worker: nothing lost, nothing committed twice, the release ends in the right state.

The first worker runs with SLIPWAY_FAILPOINTS naming one point; apps.core.failpoints
kills the process right there (SIGKILL, as an OOM kill or a power cut would). The second
worker runs with an embedded beat, as production does: its status poll
(``releases.follow_rollouts``) is the safety net that re-sends the deploy of a release
left approved or claimed without a commit (the dead worker's message stays unacked in
Redis until the visibility timeout, an hour). Argo CD is the Kubernetes API double: the
test reports the release's commit Synced+Healthy once it is on the remote.
"""

from __future__ import annotations

import signal

import pytest

from apps.audit.selectors import audit_chain_verify
from apps.gitops.render import METADATA_FILE
from apps.releases.models import Release, ReleaseState
from tests import factories
from tests.hardening.support import release_id_trailers, worker_env
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FOLDER = "environments/staging/churn-model"
APP = "churn-model-staging"
# point -> (commits with the trailer on the remote after the crash, commit recorded in DB)
AFTER_CRASH = {
    "deploy.after_render": (0, False),
    "deploy.after_commit": (0, False),  # committed in the worker's clone, never pushed
    "deploy.after_push": (1, False),  # on the remote; the database never heard
    "deploy.after_db": (1, True),
}


@pytest.mark.parametrize("point", list(AFTER_CRASH))
def test_a_worker_killed_at_a_failpoint_loses_and_duplicates_nothing(
    point,
    people,
    environments,
    service,
    model_versions,
    gitops_remote,
    kube_api,
    broker,
    start_worker,
):
    staging, _ = environments
    alice = people["alice"]
    release = factories.approved_release(service, staging, 1, requester=alice)
    assert release.state == ReleaseState.APPROVED  # staging: approved on submit
    commits_before = gitops_remote.commit_count()
    env = worker_env(gitops_remote, kube_api)

    doomed = start_worker("doomed", failpoints=point, **env)
    broker.send_task("releases.deploy_pending")  # what the approval's on_commit sends
    assert doomed.wait(90) == -signal.SIGKILL, doomed.output()

    # The crash left exactly what the point says, and nothing more.
    release.refresh_from_db()
    on_remote, recorded = AFTER_CRASH[point]
    assert release.state == ReleaseState.DEPLOYING  # claimed before it died
    assert len(gitops_remote.commits_with_trailer("Release-Id", str(release.uid))) == on_remote
    assert bool(release.commit_sha) == recorded

    start_worker("fresh", beat=True, **env)

    def committed():
        release.refresh_from_db()
        return release.commit_sha

    sha = wait_until(committed, timeout=60, message=f"the release to be committed after {point}")
    assert gitops_remote.commits_with_trailer("Release-Id", str(release.uid)) == [sha]
    assert gitops_remote.commit_count() == commits_before + 1
    files = gitops_remote.files_at(FOLDER)
    assert {k: v for k, v in files.items() if k != METADATA_FILE} == release.rendered_files
    assert release.state == ReleaseState.DEPLOYING

    kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")

    def live():
        release.refresh_from_db()
        return release.state == ReleaseState.LIVE

    wait_until(live, timeout=30, message="the release to go live")
    assert release.commit_sha == sha
    assert gitops_remote.commits_with_trailer("Release-Id", str(release.uid)) == [sha]
    assert Release.objects.filter(state=ReleaseState.LIVE).count() == 1
    assert audit_chain_verify()[1] is None


def test_a_worker_killed_while_a_second_release_waits_commits_both_in_order(
    people, environments, service, model_versions, gitops_remote, kube_api, broker, start_worker
):
    """Killed after pushing the first of two approved releases: the fresh worker records
    the first (found by its trailer) and commits the second after it, once each."""
    staging, _ = environments
    alice = people["alice"]
    first, second = (
        factories.approved_release(service, staging, version, requester=alice) for version in (1, 2)
    )
    env = worker_env(gitops_remote, kube_api)
    doomed = start_worker("doomed", failpoints="deploy.after_push", **env)
    broker.send_task("releases.deploy_pending")
    assert doomed.wait(90) == -signal.SIGKILL, doomed.output()
    start_worker("fresh", beat=True, **env)

    def both_committed():
        second.refresh_from_db()
        return second.commit_sha

    wait_until(both_committed, timeout=60, message="the second release to be committed")
    first.refresh_from_db()
    trailers = release_id_trailers(gitops_remote)
    assert trailers[-2:] == [str(first.uid), str(second.uid)]  # in order
    for release in (first, second):
        assert len(gitops_remote.commits_with_trailer("Release-Id", str(release.uid))) == 1
    # The first one's files were replaced before it went live.
    assert first.state == ReleaseState.SUPERSEDED and first.commit_sha
