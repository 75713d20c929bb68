"""The model card and the other read paths, from versions synced out of a real store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import timezone

from apps.registry.models import ModelVersion, ModelVersionStatus, RegisteredModel
from apps.registry.selectors import (
    metric_direction,
    model_card,
    releasable_versions,
    sync_status,
)
from apps.registry.services import registry_alias_assign, registry_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    return mlflow_store


def mv(n: int, name: str = "churn-model") -> ModelVersion:
    return ModelVersion.objects.get(name=name, version=n)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("accuracy", "higher"),
        ("val_accuracy", "higher"),
        ("roc_auc", "higher"),
        ("f1_score", "higher"),
        ("precision", "higher"),
        ("recall@10", "higher"),
        ("r2", "higher"),
        ("explained_variance", "higher"),
        ("loss", "lower"),
        ("val_loss", "lower"),
        ("log_loss", "lower"),
        ("rmse", "lower"),
        ("mean_absolute_error", "lower"),
        ("mse", "lower"),
        ("mae", "lower"),
        ("error_rate", "lower"),
        ("predict_latency_ms", "lower"),
        ("p95_latency", "lower"),
        ("trainLoss", "lower"),
        ("neg_mean_squared_error", "higher"),
        ("epochs", "neutral"),
        ("num_features", "neutral"),
        ("score", "neutral"),
        ("maestro", "neutral"),
    ],
)
def test_metric_direction_by_name(name, direction):
    assert metric_direction(name) == direction


def test_card_compares_metrics_with_direction(synced):
    ours, theirs = mv(2), mv(1)
    card = model_card(ours, compare_to=theirs, compare_label="v1, live in prod")

    rows = {row.name: row for row in card.metrics}
    assert set(rows) == set(ours.run_metrics) | set(theirs.run_metrics)
    for name, row in rows.items():
        value, other = ours.run_metrics[name], theirs.run_metrics[name]
        assert row.delta == pytest.approx(value - other)
        if value == other:
            assert (row.verdict, row.css_class) == ("same", "delta-neutral")
        elif row.direction == "higher":
            assert row.verdict == ("better" if value > other else "worse")
        else:
            assert row.verdict == ("better" if value < other else "worse")
    # The seeded models make these concrete: v2 (C=0.1) has a worse log loss than v1.
    assert rows["log_loss"].direction == "lower"
    assert rows["log_loss"].verdict == "worse" and rows["log_loss"].css_class == "delta-worse"
    assert rows["recall"].verdict == "better" and rows["recall"].css_class == "delta-better"
    assert card.compare_label == "v1, live in prod"
    assert [p.name for p in card.params if p.changed] == ["C"]
    assert len(card.inputs) == 30 and card.inputs[0].name == "mean_radius"
    assert card.outputs and card.has_signature and card.has_baseline
    assert ("dataset", "breast_cancer") in card.tags


def test_card_renders_for_a_reviewer(synced, settings):
    settings.MLFLOW_UI_URL = "https://mlflow.example.com/"
    ours = mv(2)
    html = render_to_string(
        "registry/_model_card.html", {"card": model_card(ours, compare_to=mv(1))}
    )

    assert "churn-model</strong>, version 2" in html
    assert (
        f"https://mlflow.example.com/#/experiments/{ours.experiment_id}/runs/{ours.run_id}" in html
    )
    assert "https://mlflow.example.com/#/models/churn-model/versions/2" in html
    assert 'class="delta-worse"' in html and 'class="delta-better"' in html
    assert "lower is better" in html and "higher is better" in html
    assert "mean_radius" in html
    assert "may be out of date" not in html
    assert "<script" not in html and "http://" not in html


def test_card_without_comparison_or_ui(synced, settings):
    settings.MLFLOW_UI_URL = ""
    card = model_card(mv(1), compare_to=mv(1))
    assert card.compare_to is None
    assert all(row.verdict == "n/a" for row in card.metrics)
    assert card.run_url == "" and card.version_url == ""
    html = render_to_string("registry/_model_card.html", {"card": card})
    assert "Nothing to compare with" in html and "delta-better" not in html.split("</p>", 3)[-1]


def test_card_says_when_data_is_stale_or_version_gone(synced):
    RegisteredModel.objects.filter(name="churn-model").update(
        last_success_at=timezone.now() - timedelta(days=1)
    )
    ModelVersion.objects.filter(pk=mv(1).pk).update(deleted_upstream_at=timezone.now())

    card = model_card(mv(1))
    html = render_to_string("registry/_model_card.html", {"card": card})

    assert card.is_stale
    assert "This model information may be out of date" in html
    assert "Cannot be released" in html and "deleted from the MLflow registry" in html


def test_card_of_a_version_mlflow_never_described(db):
    bare = ModelVersion.objects.create(name="hand-made", version=1)
    html = render_to_string("registry/_model_card.html", {"card": model_card(bare)})
    assert "logged without a signature" in html
    assert "No metrics were logged" in html


def test_releasable_versions_are_ready_live_and_newest_first(synced):
    ModelVersion.objects.filter(pk=mv(3).pk).update(status=ModelVersionStatus.PENDING_REGISTRATION)
    ModelVersion.objects.filter(pk=mv(1).pk).update(deleted_upstream_at=timezone.now())
    assert [v.version for v in releasable_versions("churn-model")] == [2]
    assert [v.version for v in releasable_versions("fraud-detector")] == [2, 1]
    assert not releasable_versions("unknown").exists()


def test_whole_registry_status(synced, settings):
    status = sync_status()
    assert status.known and not status.is_stale and status.message == "Up to date with MLflow."


def render_sync_status(user, **context):
    """Render with what the partial needs from the page (request, roles, CSRF token), not
    through every project context processor."""
    from django.middleware.csrf import get_token

    from apps.accounts.roles import Role, user_roles

    request = RequestFactory().get("/services/churn-model/")
    request.user = user
    context |= {
        "request": request,
        "roles": user_roles(user),
        "Role": Role,
        "csrf_token": get_token(request),
    }
    return render_to_string("registry/_sync_status.html", context)


def test_sync_status_partial_offers_refresh_to_ml_engineers(synced, alice, pat):
    html = render_sync_status(alice, registered_model="churn-model")
    assert "In step with MLflow" in html
    assert 'action="/registry/sync/churn-model/"' in html
    assert 'name="next" value="/services/churn-model/"' in html
    assert "csrfmiddlewaretoken" in html

    assert "Refresh from MLflow" not in render_sync_status(pat, registered_model="churn-model")
    assert "Refresh from MLflow" not in render_sync_status(
        AnonymousUser(), registered_model="churn-model"
    )


def test_sync_status_partial_when_stale(synced, alice, unreachable_mlflow_uri):
    from apps.registry.client import RegistryClient

    registry_sync(client=RegistryClient(tracking_uri=unreachable_mlflow_uri))
    html = render_sync_status(alice, registered_model="churn-model")
    assert "MLflow data may be out of date" in html
    assert "refused the connection" in html


def test_alias_updates_partial(synced, unreachable_mlflow_uri):
    from apps.registry.client import RegistryClient
    from apps.registry.services import registry_alias_apply

    update = registry_alias_assign(
        model_version=mv(2),
        alias="prod",
        release_uid="6a1f0e5e-7a0c-4a57-9a57-0d3c8a1f2b9e",
        actor_label="deployer",
    )
    registry_alias_apply(
        alias_update_id=update.pk, client=RegistryClient(tracking_uri=unreachable_mlflow_uri)
    )

    html = render_to_string(
        "registry/_alias_updates.html", {"release_uid": "6a1f0e5e-7a0c-4a57-9a57-0d3c8a1f2b9e"}
    )
    assert "@prod" in html and "pending" in html and "1 attempt" in html
    assert "refused the connection" in html
