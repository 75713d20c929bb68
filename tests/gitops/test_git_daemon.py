"""One end-to-end run against a real ``git daemon`` (git:// over TCP on 127.0.0.1)."""

from __future__ import annotations

import uuid

import pytest

from apps.gitops.errors import GitRemoteUnavailable
from apps.gitops.render import render
from tests.gitops.conftest import make_request


def test_commit_and_redelivery_through_git_daemon(git_daemon, gitops_remote, make_git_writer):
    url = git_daemon.url("gitops.git")
    writer = make_git_writer(url)
    release_id = str(uuid.uuid4())
    files = render(make_request(release_id=release_id)).files

    first = writer.commit_release(
        environment="staging",
        service="churn",
        files=files,
        message="Deploy churn",
        trailers={"Release-Id": release_id},
    )
    again = make_git_writer(url, name="other").commit_release(
        environment="staging",
        service="churn",
        files=files,
        message="Deploy churn",
        trailers={"Release-Id": release_id},
    )

    assert first.created and not again.created and again.sha == first.sha
    assert gitops_remote.head() == first.sha
    assert writer.current_files("staging", "churn") == files

    # The daemon goes away: a retryable error, not a hang.
    git_daemon.stop()
    with pytest.raises(GitRemoteUnavailable) as caught:
        writer.commit_release(
            environment="staging",
            service="churn",
            files=files,
            message="Deploy churn",
            trailers={"Release-Id": str(uuid.uuid4())},
        )
    assert "127.0.0.1" in str(caught.value)
