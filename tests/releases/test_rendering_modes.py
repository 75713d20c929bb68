"""A release renders for its environment's KServe deployment mode."""

from __future__ import annotations

import uuid

import pytest
import yaml

from apps.gitops.config import ConfigError
from apps.releases.rendering import render_release
from tests import factories

pytestmark = pytest.mark.django_db


def render_for(environment, config):
    service = factories.make_service("fraud-model", runtime="kserve-sklearn", default_config={})
    version = factories.make_model_version("fraud-model", 2, source="s3://models/fraud-model/2")
    return render_release(
        service=service,
        environment=environment,
        model_version=version,
        release_uid=uuid.uuid4(),
        config=config,
    )


def test_new_environments_run_knative_and_get_canaries(staging):
    assert (staging.kserve_mode, staging.kserve_version) == ("knative", "0.20")
    rendered = render_for(staging, {"canary_percent": 10})
    isvc = yaml.safe_load(rendered.files["inferenceservice.yaml"])
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10


def test_a_standard_mode_environment_refuses_a_canary_and_scales_on_cpu(staging):
    staging.kserve_mode = "standard"
    staging.save(update_fields=["kserve_mode"])
    with pytest.raises(ConfigError) as caught:
        render_for(staging, {"canary_percent": 10})
    assert "Standard mode" in caught.value.errors["canary_percent"]
    isvc = yaml.safe_load(render_for(staging, {}).files["inferenceservice.yaml"])
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["spec"]["predictor"]["scaleMetric"] == "cpu"
