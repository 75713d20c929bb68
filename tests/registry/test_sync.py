"""The registry sync against a real MLflow sqlite store holding real trained models."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.registry.client import RegistryClient, RegistryUnavailable
from apps.registry.models import ModelVersion, RegisteredModel, RegistrySyncState
from apps.registry.selectors import releasable_versions, sync_status
from apps.registry.services import registry_sync

pytestmark = pytest.mark.django_db

PER_MODEL_METHODS = {
    "get_registered_model",
    "search_model_versions",
    "search_experiments",
    "search_runs",
    "get_run",
    "download_artifacts",
    "download_mlmodel",
    "get_model_version_download_uri",
}


def per_model_calls(client: RegistryClient) -> dict[str, int]:
    return {m: n for m, n in client.calls_by_method.items() if m in PER_MODEL_METHODS}


def test_first_sync_mirrors_every_field(mlflow_store):
    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.ok, result
    assert result.models_seen == 2
    assert sorted(result.versions_created) == sorted(
        f"{v.name} v{v.version}" for v in mlflow_store.seeded
    )
    assert ModelVersion.objects.count() == 5
    seeded = next(v for v in mlflow_store.seeded if (v.name, v.version) == ("churn-model", 2))
    mv = ModelVersion.objects.get(name="churn-model", version=2)
    upstream = mlflow_store.mlflow().get_model_version("churn-model", "2")
    assert mv.run_id == seeded.run_id
    assert mv.source == upstream.source
    assert mv.status == "READY" and mv.is_releasable
    assert mv.description == upstream.description and "logistic_regression" in mv.description
    assert mv.tags == {"dataset": "breast_cancer", "estimator": "logistic_regression"}
    assert mv.aliases == []
    assert mv.run_metrics == pytest.approx(seeded.metrics)
    assert mv.run_params == seeded.params
    assert mv.experiment_id
    # Who trained it: the run's user, which separation of duties refuses as approver.
    run_user = mlflow_store.mlflow().get_run(seeded.run_id).info.user_id
    assert run_user and mv.run_user == run_user and mv.trainer == run_user
    assert int(mv.mlflow_created_at.timestamp() * 1000) == upstream.creation_timestamp
    # The signature from the MLmodel file: 30 named features in, one score out.
    assert len(mv.signature["inputs"]) == 30
    assert mv.signature["inputs"][0]["name"] == "mean_radius"
    assert mv.signature["outputs"][0]["type"] in {"double", "tensor"}
    # The score baseline artifact: ten buckets up to 1.0, one count per test row.
    assert mv.score_baseline["le"] == pytest.approx([0.1 * i for i in range(1, 11)])
    assert sum(mv.score_baseline["counts"]) == 171  # 30% of 569 rows
    assert mv.details_synced_at is not None and mv.details_note == ""

    rm = RegisteredModel.objects.get(name="churn-model")
    assert rm.last_success_at is not None and rm.last_error == ""
    assert int(rm.mlflow_updated_at.timestamp() * 1000) == (
        mlflow_store.mlflow().get_registered_model("churn-model").last_updated_timestamp
    )
    assert RegistrySyncState.objects.get(pk=1).last_success_at is not None
    assert not sync_status("churn-model").is_stale
    event = AuditEvent.objects.filter(action="registry.sync", target_id="churn-model").get()
    assert event.actor_label == "system:registry-sync"
    assert event.after["created"] == [1, 2, 3]


def test_unchanged_resync_makes_no_per_model_calls(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    events_before = AuditEvent.objects.count()

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.ok
    assert result.models_unchanged == 2 and result.models_read == []
    assert dict(client.calls_by_method) == {"search_registered_models": 1}
    assert client.calls == result.calls == 1
    assert not result.changed
    assert AuditEvent.objects.count() == events_before


def test_listing_pages_through_every_model(mlflow_store):
    client = mlflow_store.registry_client(models_page_size=1, versions_page_size=2)
    result = registry_sync(client=client)

    assert result.ok and result.models_seen == 2
    assert ModelVersion.objects.count() == 5
    # 2 models, one per page, and a last page; churn-model's 3 versions take 2 pages.
    assert client.calls_by_method["search_registered_models"] >= 2
    assert client.calls_by_method["search_model_versions"] == 3


def test_only_the_changed_model_is_reread(mlflow_store):
    from apps.registry.demo_seed import seed_demo_models

    registry_sync(client=mlflow_store.registry_client())
    seed_demo_models(mlflow_store.uri, {"fraud-detector": 1})

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.models_read == ["fraud-detector"]
    assert result.versions_created == ["fraud-detector v3"]
    assert client.calls_by_method["search_model_versions"] == 1
    # Details are read for the new version only, its run in one search.
    assert result.details_read == 1 and result.artifacts_read == 1
    assert client.calls_by_method["search_runs"] == 1
    assert client.calls_by_method["get_run"] == 0
    new = ModelVersion.objects.get(name="fraud-detector", version=3)
    assert new.run_metrics["accuracy"] > 0.5 and new.signature is not None


def test_alias_moved_in_mlflow_is_mirrored_without_per_model_calls(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    mlflow_store.mlflow().set_registered_model_alias("churn-model", "champion", "2")

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert per_model_calls(client) == {}
    assert ModelVersion.objects.get(name="churn-model", version=2).aliases == ["champion"]
    assert RegisteredModel.objects.get(name="churn-model").aliases == {"champion": 2}
    assert result.versions_updated == ["churn-model v2"]

    mlflow_store.mlflow().set_registered_model_alias("churn-model", "champion", "3")
    registry_sync(client=mlflow_store.registry_client())
    assert ModelVersion.objects.get(name="churn-model", version=2).aliases == []
    assert ModelVersion.objects.get(name="churn-model", version=3).aliases == ["champion"]


def test_version_deleted_upstream_is_kept_and_not_releasable(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    mlflow_store.mlflow().delete_model_version("churn-model", "1")

    result = registry_sync(client=mlflow_store.registry_client())

    assert result.ok
    assert result.versions_deleted_upstream == ["churn-model v1"]
    gone = ModelVersion.objects.get(name="churn-model", version=1)
    assert gone.deleted_upstream_at is not None
    assert not gone.is_releasable
    assert "deleted from the MLflow registry" in gone.not_releasable_reason
    assert gone.run_metrics and gone.signature  # what Slipway knew is kept
    assert list(releasable_versions("churn-model").values_list("version", flat=True)) == [3, 2]
    assert AuditEvent.objects.filter(
        action="registry.sync", target_id="churn-model", after__deleted_upstream=[1]
    ).exists()


def test_registered_model_deleted_upstream_marks_all_its_versions(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    mlflow_store.mlflow().delete_registered_model("fraud-detector")

    result = registry_sync(client=mlflow_store.registry_client())

    assert result.models_deleted_upstream == ["fraud-detector"]
    assert not releasable_versions("fraud-detector").exists()
    assert ModelVersion.objects.filter(name="fraud-detector").count() == 2
    assert sync_status("fraud-detector").deleted_upstream_at is not None
    assert releasable_versions("churn-model").count() == 3


def test_registry_that_lost_every_model_is_not_believed(mlflow_store, empty_mlflow_store):
    registry_sync(client=mlflow_store.registry_client())

    result = registry_sync(client=empty_mlflow_store.registry_client())

    assert not result.ok
    assert "lists none of the 2 registered models" in result.error
    assert ModelVersion.objects.filter(deleted_upstream_at__isnull=False).count() == 0
    assert sync_status().is_stale


def test_mlflow_down_keeps_data_records_error_and_reads_stale(mlflow_store, unreachable_mlflow_uri):
    registry_sync(client=mlflow_store.registry_client())
    before = {(mv.name, mv.version): mv.run_metrics for mv in ModelVersion.objects.all()}
    last_success = RegistrySyncState.objects.get(pk=1).last_success_at

    down = RegistryClient(tracking_uri=unreachable_mlflow_uri, timeout=2)
    result = registry_sync(client=down)

    assert not result.ok
    assert "refused the connection" in result.error
    assert {(mv.name, mv.version): mv.run_metrics for mv in ModelVersion.objects.all()} == before
    assert not ModelVersion.objects.filter(deleted_upstream_at__isnull=False).exists()
    state = RegistrySyncState.objects.get(pk=1)
    assert state.last_success_at == last_success
    assert state.last_error_at is not None and "refused" in state.last_error
    status = sync_status("churn-model")
    assert status.is_stale and status.failing
    assert "could not be reached" in status.message
    assert releasable_versions("churn-model").count() == 3

    # MLflow back: the next sync clears the error.
    assert registry_sync(client=mlflow_store.registry_client()).ok
    assert not sync_status("churn-model").is_stale


def test_refresh_of_one_model_when_mlflow_is_down(mlflow_store, unreachable_mlflow_uri):
    registry_sync(client=mlflow_store.registry_client())

    result = registry_sync(
        client=RegistryClient(tracking_uri=unreachable_mlflow_uri),
        model_names=["churn-model"],
        force=True,
    )

    assert not result.ok and "churn-model" in result.models_failed
    assert "MLflow could not be read" in result.summary()
    rm = RegisteredModel.objects.get(name="churn-model")
    assert rm.last_error and rm.last_error_at > rm.last_success_at
    assert sync_status("churn-model").is_stale
    assert not sync_status("fraud-detector").is_stale


def test_data_older_than_three_intervals_is_stale(mlflow_store, settings):
    settings.REGISTRY_SYNC_SECONDS = 60
    registry_sync(client=mlflow_store.registry_client())
    assert not sync_status("churn-model").is_stale

    RegisteredModel.objects.filter(name="churn-model").update(
        last_success_at=timezone.now() - timedelta(seconds=181)
    )
    status = sync_status("churn-model")
    assert status.is_stale and not status.failing
    assert not sync_status("never-heard-of").known
    assert sync_status("never-heard-of").is_stale


class FailingArtifacts(RegistryClient):
    """The real client, with MLflow going away after ``ok_downloads`` artifact reads."""

    ok_downloads = 2

    def _download_artifact(self, method, location, path):
        downloads = (
            self.calls_by_method["download_artifacts"] + self.calls_by_method["download_mlmodel"]
        )
        if downloads >= self.ok_downloads:
            self.calls_by_method[method] += 1
            raise RegistryUnavailable("MLflow went away mid-sync (test)")
        return super()._download_artifact(method, location, path)


def test_artifacts_owed_after_a_failure_are_read_next_time(mlflow_store):
    flaky = FailingArtifacts(tracking_uri=mlflow_store.uri)
    result = registry_sync(client=flaky, model_names=["churn-model"])

    assert not result.ok
    rows = {mv.version: mv for mv in ModelVersion.objects.filter(name="churn-model")}
    assert len(rows) == 3  # the listing was written
    # The runs came in one batch before MLflow went away: every version has them.
    assert all(row.details_synced_at is not None and row.run_metrics for row in rows.values())
    # Newest first: v3's artifacts were read, v2's and v1's are owed and said to be.
    assert rows[3].artifacts_synced_at is not None and rows[3].signature is not None
    assert rows[2].artifacts_synced_at is None and rows[1].artifacts_synced_at is None
    assert "not read yet" in rows[2].details_note

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.ok
    # churn-model is not listed again (its timestamp did not move): only its two owed
    # versions' artifacts are read, plus fraud-detector, new, in full.
    assert result.models_read == ["churn-model", "fraud-detector"]
    assert client.calls_by_method["search_model_versions"] == 1
    assert client.calls_by_method["search_runs"] == 2  # one batch per model
    assert client.calls_by_method["download_artifacts"] == 2 + 2
    assert result.artifacts_read == 2 + 2
    for mv in ModelVersion.objects.filter(name="churn-model"):
        assert mv.signature is not None and mv.score_baseline is not None
        assert mv.details_note == ""


def test_first_sync_batches_runs_and_spreads_artifact_reads(mlflow_store, monkeypatch):
    from apps.registry.services import sync

    monkeypatch.setattr(sync, "ARTIFACT_READS_PER_MODEL", 1)
    mlflow_store.mlflow().set_registered_model_alias("churn-model", "prod", "1")

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.ok and result.details_read == 5
    # Calls grow with models, not versions: one run search per model, experiments once,
    # and artifacts (two downloads) for one version per model.
    assert dict(client.calls_by_method) == {
        "search_registered_models": 1,
        "search_model_versions": 2,
        "search_experiments": 1,
        "search_runs": 2,
        "download_artifacts": 2,
        "download_mlmodel": 2,
    }
    churn = {mv.version: mv for mv in ModelVersion.objects.filter(name="churn-model")}
    assert all(mv.run_metrics for mv in churn.values())
    # The aliased (deployed) version first: drift needs its baseline.
    assert churn[1].score_baseline is not None and churn[1].artifacts_synced_at is not None
    assert churn[3].signature is None and churn[3].artifacts_synced_at is None

    # The following syncs read the rest, newest first, one per model each time.
    second = mlflow_store.registry_client()
    registry_sync(client=second)
    assert "search_model_versions" not in second.calls_by_method
    assert ModelVersion.objects.get(name="churn-model", version=3).signature is not None
    assert ModelVersion.objects.get(name="churn-model", version=2).signature is None
    registry_sync(client=mlflow_store.registry_client())
    assert not ModelVersion.objects.filter(artifacts_synced_at=None).exists()
    last = mlflow_store.registry_client()
    registry_sync(client=last)
    assert dict(last.calls_by_method) == {"search_registered_models": 1}


def test_a_version_owing_artifacts_is_read_on_demand(mlflow_store, monkeypatch):
    from apps.registry.services import registry_version_details_read, sync

    monkeypatch.setattr(sync, "ARTIFACT_READS_PER_MODEL", 0)
    registry_sync(client=mlflow_store.registry_client(), model_names=["churn-model"])
    mv = ModelVersion.objects.get(name="churn-model", version=1)
    assert mv.signature is None and mv.artifacts_synced_at is None and mv.run_metrics

    client = mlflow_store.registry_client()
    registry_version_details_read(model_version=mv, client=client)

    mv = ModelVersion.objects.get(pk=mv.pk)
    assert len(mv.signature["inputs"]) == 30 and sum(mv.score_baseline["counts"]) == 171
    assert mv.artifacts_synced_at is not None and mv.details_note == ""
    assert client.calls_by_method["search_runs"] == 1
    assert ModelVersion.objects.get(name="churn-model", version=2).signature is None


def test_versions_of_one_run_share_their_artifact_reads(mlflow_store, monkeypatch):
    from apps.registry.services import sync

    monkeypatch.setattr(sync, "ARTIFACT_READS_PER_MODEL", 10)
    v1 = next(v for v in mlflow_store.seeded if (v.name, v.version) == ("churn-model", 1))
    upstream = mlflow_store.mlflow().get_model_version("churn-model", "1")
    mlflow_store.mlflow().create_model_version(
        "churn-model", source=upstream.source, run_id=v1.run_id
    )

    client = mlflow_store.registry_client()
    result = registry_sync(client=client, model_names=["churn-model"])

    assert result.ok and result.artifacts_read == 4
    twin, original = (ModelVersion.objects.get(name="churn-model", version=n) for n in (4, 1))
    assert twin.signature == original.signature and twin.score_baseline
    # Four versions, three runs and three model folders: one download of each file.
    assert client.calls_by_method["download_artifacts"] == 3
    assert client.calls_by_method["download_mlmodel"] == 3


def test_forced_refresh_rereads_details(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    seeded = next(v for v in mlflow_store.seeded if (v.name, v.version) == ("churn-model", 1))
    mlflow_store.mlflow().log_metric(seeded.run_id, "accuracy", 0.5)
    mlflow_store.mlflow().set_model_version_tag("churn-model", "1", "owner", "growth")

    result = registry_sync(client=mlflow_store.registry_client())
    assert result.models_unchanged == 2  # MLflow's timestamp did not move for either

    client = mlflow_store.registry_client()
    result = registry_sync(client=client, model_names=["churn-model"], force=True)
    assert result.versions_updated == ["churn-model v1"]
    assert "updated: churn-model v1" in result.summary()
    mv = ModelVersion.objects.get(name="churn-model", version=1)
    assert mv.run_metrics["accuracy"] == 0.5
    assert mv.tags["owner"] == "growth"
    assert result.details_read == 3 and client.calls_by_method["search_runs"] == 1


def test_periodic_full_read_catches_silent_changes(mlflow_store, settings):
    registry_sync(client=mlflow_store.registry_client())
    mlflow_store.mlflow().set_model_version_tag("churn-model", "2", "reviewed", "yes")
    settings.REGISTRY_FULL_RESYNC_SECONDS = 3600
    RegisteredModel.objects.filter(name="churn-model").update(
        fully_read_at=timezone.now() - timedelta(hours=2)
    )

    client = mlflow_store.registry_client()
    result = registry_sync(client=client)

    assert result.models_read == ["churn-model"]
    assert ModelVersion.objects.get(name="churn-model", version=2).tags["reviewed"] == "yes"


def test_restored_version_is_releasable_again(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    ModelVersion.objects.filter(name="churn-model", version=2).update(
        deleted_upstream_at=timezone.now()
    )
    RegisteredModel.objects.filter(name="churn-model").update(mlflow_updated_at=None)

    result = registry_sync(client=mlflow_store.registry_client())

    assert result.versions_restored == ["churn-model v2"]
    assert ModelVersion.objects.get(name="churn-model", version=2).is_releasable


def test_refresh_of_a_model_mlflow_does_not_have(mlflow_store):
    result = registry_sync(client=mlflow_store.registry_client(), model_names=["nope"])
    assert result.ok and result.models_missing == ["nope"]
    assert "no registered model named nope" in result.summary()
    assert not RegisteredModel.objects.filter(name="nope").exists()


def test_sync_by_a_user_is_audited_in_their_name(mlflow_store, alice):
    registry_sync(
        client=mlflow_store.registry_client(), model_names=["churn-model"], force=True, actor=alice
    )
    event = AuditEvent.objects.get(action="registry.sync", target_id="churn-model")
    assert event.actor_label == "alice"


def test_forced_refresh_reads_details_of_the_newest_versions_only(mlflow_store, monkeypatch):
    from apps.registry.services import sync

    registry_sync(client=mlflow_store.registry_client())
    monkeypatch.setattr(sync, "FORCED_DETAILS_NEWEST", 2)

    client = mlflow_store.registry_client()
    result = registry_sync(client=client, model_names=["churn-model"], force=True)

    assert result.details_read == 2 and result.artifacts_read == 2
    assert client.calls_by_method["download_mlmodel"] == 2
    assert client.calls_by_method["search_model_versions"] == 1


@pytest.mark.parametrize("failure", ["garbage", "silent", "server-error"])
def test_sync_survives_a_broken_mlflow(mlflow_store, failure, http_double, silent_port):
    registry_sync(client=mlflow_store.registry_client())
    if failure == "silent":
        uri = f"http://127.0.0.1:{silent_port}"
    elif failure == "garbage":
        uri = http_double(200, b"<html>login</html>").url
    else:
        uri = http_double(
            500,
            b'{"error_code": "INTERNAL_ERROR", "message": "db down"}',
            {"Content-Type": "application/json"},
        ).url

    result = registry_sync(client=RegistryClient(tracking_uri=uri, timeout=1))

    assert not result.ok and result.error
    assert ModelVersion.objects.filter(deleted_upstream_at__isnull=True).count() == 5
    assert sync_status().is_stale and sync_status("churn-model").failing
