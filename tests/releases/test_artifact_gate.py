"""A release is not put in front of reviewers when its runtime's model server cannot load
the version's artifacts (listed in a real MLflow store)."""

from __future__ import annotations

import pytest

from apps.core.errors import DomainError, Unavailable
from apps.releases import services
from apps.releases.models import ReleaseState
from tests import factories

pytestmark = pytest.mark.django_db

# What an S3-backed MLflow reports as the source; the cluster fetches from there. Slipway
# lists the files through MLflow itself (models:/), which the test store serves locally.
S3_SOURCE = "s3://mlflow-artifacts/churn-model/1"


@pytest.fixture
def registry(mlflow_store, settings):
    settings.MLFLOW_TRACKING_URI = mlflow_store.uri
    return mlflow_store


def _draft(alice, staging, runtime, config=None):
    service = factories.make_service(
        f"svc-{runtime.replace('-', '')}"[:30],
        registered_model="churn-model",
        runtime=runtime,
        default_config=config or {},
    )
    mv = factories.make_model_version("churn-model", 1, source=S3_SOURCE)
    draft, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="try"
    )
    return draft


def test_kserve_sklearn_refuses_an_mlflow_skops_model_before_review(registry, alice, staging):
    draft = _draft(alice, staging, "kserve-sklearn")
    with pytest.raises(DomainError) as caught:
        services.release_submit(actor=alice, release=draft)
    message = caught.value.message
    assert "cannot load the artifacts of churn-model v1" in message
    assert "No .joblib/.pkl/.pickle" in message
    assert "kserve-mlflow" in message  # says what would load it
    assert caught.value.field_errors["model_version"]
    draft.refresh_from_db()
    assert draft.state == ReleaseState.DRAFT  # nothing moved, nothing to approve


def test_the_mlflow_runtime_loads_it_and_the_release_goes_on(registry, alice, staging):
    draft = _draft(alice, staging, "kserve-mlflow")
    submitted = services.release_submit(actor=alice, release=draft)
    assert submitted.state in {ReleaseState.APPROVED, ReleaseState.PENDING_APPROVAL}


def test_torchserve_names_the_files_it_needs(registry, alice, staging):
    draft = _draft(alice, staging, "kserve-pytorch")
    with pytest.raises(DomainError, match=r"config/config\.properties"):
        services.release_submit(actor=alice, release=draft)


def test_image_runtimes_are_not_checked_even_with_mlflow_down(settings, alice, staging):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    service = factories.make_service()  # a custom image: its own server loads the model
    mv = factories.make_model_version()
    draft, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="try"
    )
    assert services.release_submit(actor=alice, release=draft).state != ReleaseState.DRAFT


def test_mlflow_down_is_a_retryable_answer_not_a_verdict(settings, alice, staging, registry):
    draft = _draft(alice, staging, "kserve-mlflow")
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    settings.MLFLOW_TIMEOUT_SECONDS = 2
    with pytest.raises(Unavailable, match="try again"):
        services.release_submit(actor=alice, release=draft)
    draft.refresh_from_db()
    assert draft.state == ReleaseState.DRAFT


def test_api_answers_503_while_mlflow_is_down_and_400_for_a_bad_layout(
    registry, alice, staging, settings
):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    bad = _draft(alice, staging, "kserve-sklearn")
    answer = client.post(f"/api/v1/releases/{bad.pk}/submit/")
    assert answer.status_code == 400, answer.content
    assert "No .joblib/.pkl/.pickle" in answer.json()["detail"]
    good = _draft(alice, staging, "kserve-mlflow")
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    settings.MLFLOW_TIMEOUT_SECONDS = 2
    answer = client.post(f"/api/v1/releases/{good.pk}/submit/")
    assert answer.status_code == 503, answer.content
    assert "try again" in answer.json()["detail"]
