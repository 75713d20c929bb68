"""``rollback_default_targets``: the fleet page's rollback offers for many targets in one
query make the same choice as ``rollback_default_target`` does for each one."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.releases import services
from apps.releases.models import Release, ReleaseState
from tests import factories

pytestmark = pytest.mark.django_db


def _live(service, staging):
    return Release.objects.get(service=service, environment=staging, state=ReleaseState.LIVE)


def _histories(staging, alice, otto) -> list:
    """Targets with the histories rollback_candidates distinguishes; their live releases."""
    plain = factories.make_service("plain")  # v1, v2, v3: back to v2
    for version in (1, 2, 3):
        factories.live_release(plain, staging, version, requester=alice)

    restored = factories.make_service("restored")  # v3 rolled back to v1: nothing older
    v1 = factories.live_release(restored, staging, 1, requester=alice)
    for version in (2, 3):
        factories.live_release(restored, staging, version, requester=alice)
    v1.refresh_from_db()
    factories.release_to_live(
        services.release_rollback(
            actor=otto, service=restored, environment=staging, reason="bad v3", target=v1
        )
    )

    after = factories.make_service("after")  # v2 rolled back, then v3: back to v1
    factories.live_release(after, staging, 1, requester=alice)
    factories.live_release(after, staging, 2, requester=alice)
    factories.release_to_live(
        services.release_rollback(actor=otto, service=after, environment=staging, reason="v2")
    )
    factories.live_release(after, staging, 3, requester=alice)

    rolled = factories.make_service("rolled")  # v1, v2, v3, rolled back to v2: back to v1
    for version in (1, 2, 3):
        factories.live_release(rolled, staging, version, requester=alice)
    factories.release_to_live(
        services.release_rollback(actor=otto, service=rolled, environment=staging, reason="v3")
    )

    single = factories.make_service("single")  # one release: nothing to go back to
    factories.live_release(single, staging, 1, requester=alice)
    return [_live(s, staging) for s in (plain, restored, after, rolled, single)]


def test_the_batch_chooses_what_each_single_choice_does(people, staging):
    lives = _histories(staging, people["alice"], people["otto"])
    one_by_one = {
        live.pk: target.pk
        for live in lives
        if (target := services.rollback_default_target(live)) is not None
    }
    # The histories cover both answers and both kinds of live release.
    assert len(one_by_one) == 3 and len(lives) == 5
    assert {live.kind for live in lives} == {"deploy", "rollback"}
    with CaptureQueriesContext(connection) as ctx:
        batch = services.rollback_default_targets(lives)
    assert {live_id: target.pk for live_id, target in batch.items()} == one_by_one
    # One query for the candidates, one hop for the live rollbacks' restored releases.
    assert len(ctx) == 2


def test_the_batch_loads_only_the_asked_fields(people, staging):
    lives = _histories(staging, people["alice"], people["otto"])
    plain = lives[0]
    batch = services.rollback_default_targets(
        [plain], fields=("id", "service_id", "environment_id", "model_version__version")
    )
    target = batch[plain.pk]
    with CaptureQueriesContext(connection) as ctx:
        assert target.model_version.version == 2
    assert len(ctx) == 0
    assert "rendered_files" in target.get_deferred_fields()


def test_nothing_asked_costs_nothing():
    with CaptureQueriesContext(connection) as ctx:
        assert services.rollback_default_targets([]) == {}
    assert len(ctx) == 0
