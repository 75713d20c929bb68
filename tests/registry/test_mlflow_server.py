"""Against a real ``mlflow server`` process: the HTTP client path end to end."""

from __future__ import annotations

import uuid

import pytest

from apps.registry.client import RegistryClient
from apps.registry.demo_seed import seed_demo_models
from apps.registry.models import AliasUpdateState, ModelVersion
from apps.registry.selectors import model_card, sync_status
from apps.registry.services import registry_alias_apply, registry_alias_assign, registry_sync

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_sync_alias_and_outage_against_a_real_server(mlflow_server):
    seeded = seed_demo_models(mlflow_server.url, {"churn-model": 2})
    client = RegistryClient(tracking_uri=mlflow_server.url, timeout=10)

    result = registry_sync(client=client)

    assert result.ok, (result, mlflow_server.log())
    assert result.versions_created == ["churn-model v1", "churn-model v2"]
    v2 = ModelVersion.objects.get(name="churn-model", version=2)
    assert v2.source.startswith("models:/m-")  # an MLflow 3 logged model, over HTTP
    assert v2.run_metrics == pytest.approx(seeded[1].metrics)
    assert v2.run_params == seeded[1].params
    assert len(v2.signature["inputs"]) == 30  # MLmodel fetched through the server's proxy
    assert sum(v2.score_baseline["counts"]) == 171
    assert v2.details_note == ""

    again = RegistryClient(tracking_uri=mlflow_server.url)
    assert registry_sync(client=again).models_unchanged == 1
    assert dict(again.calls_by_method) == {"search_registered_models": 1}

    update = registry_alias_assign(
        model_version=v2, alias="prod", release_uid=str(uuid.uuid4()), actor_label="deployer"
    )
    update = registry_alias_apply(
        alias_update_id=update.pk, client=RegistryClient(tracking_uri=mlflow_server.url)
    )
    assert update.state == AliasUpdateState.DONE
    upstream = client._client().get_model_version_by_alias("churn-model", "prod")
    assert upstream.version == "2"
    assert upstream.tags["slipway.release_id"] == str(update.release_uid)

    card = model_card(v2, compare_to=ModelVersion.objects.get(name="churn-model", version=1))
    assert {row.name for row in card.metrics} >= {"accuracy", "log_loss"}

    # MLflow goes away: the data stays, the failure is recorded, the page says stale.
    mlflow_server.stop()
    down = registry_sync(client=RegistryClient(tracking_uri=mlflow_server.url, timeout=2))
    assert not down.ok and "refused the connection" in down.error
    assert ModelVersion.objects.filter(name="churn-model", deleted_upstream_at=None).count() == 2
    assert sync_status("churn-model").is_stale
