"""The analysis config check release creation runs (``check_analysis_config``): the same
parse that judges a step, as a 400-shaped ``DomainError`` whose field paths name the key
and whose message gives the allowed values."""

from __future__ import annotations

import pytest

from apps.core.errors import DomainError
from apps.metrics.analysis.config import check_analysis_config, parse_analysis_config
from apps.metrics.analysis.thresholds import ThresholdError
from apps.metrics.sources.base import MetricsConfigError


def refused(config, runtime="custom") -> DomainError:
    with pytest.raises(DomainError) as caught:
        check_analysis_config(config, environment="staging", runtime=runtime)
    return caught.value


@pytest.mark.parametrize(
    ("thresholds", "path", "words"),
    [
        ({"psi_max": "high"}, "psi_max", "must be a number, not 'high'"),
        ({"psi_max": True}, "psi_max", "must be a number"),
        ({"latency_p95_ratio_max": [1.2]}, "latency_p95_ratio_max", "must be a number"),
        ({"latency_p95_ratio_max": 0.8}, "latency_p95_ratio_max", "must be at least 1"),
        ({"error_rate_max": 5}, "error_rate_max", "a share between 0 and 1"),
        ({"min_requests": 0}, "min_requests", "whole number >= 1"),
        ({"min_requests": 2.5}, "min_requests", "whole number >= 1"),
        ({"psi_epsilon": "nan"}, "psi_epsilon", "finite number"),
        ({"required": []}, "required", "at least one check"),
        ({"required": ["latency"]}, "required", "the checks are latency_p95, error_rate"),
    ],
)
def test_a_bad_threshold_names_the_key_and_its_allowed_values(thresholds, path, words):
    error = refused({"thresholds": thresholds})
    assert list(error.field_errors) == [f"analysis.thresholds.{path}"]
    assert words in error.field_errors[f"analysis.thresholds.{path}"][0]
    assert error.message.startswith(
        f"The analysis config was refused: analysis.thresholds.{path}: "
    )


def test_every_bad_threshold_is_listed():
    error = refused({"thresholds": {"psi_max": -1, "agreement_min": 2, "nope": 1}})
    assert set(error.field_errors) == {
        "analysis.thresholds.psi_max",
        "analysis.thresholds.agreement_min",
        "analysis.thresholds.nope",
    }
    assert "the thresholds are agreement_min, cost_per_1k_ratio_max" in error.message


def test_unknown_keys_are_refused_at_every_level():
    error = refused({"threshold": {"psi_max": 0.2}})
    assert error.field_errors == {
        "analysis.threshold": [
            "The service's analysis config has unknown keys ['threshold']; the keys are "
            "thresholds, promql."
        ]
    }
    error = refused({"promql": {"latency": "up"}})
    assert list(error.field_errors) == ["analysis.promql"]
    assert "the families are latency_buckets, requests" in error.message


def test_nul_is_refused_and_shown_escaped_never_raw():
    error = refused({"thresholds": {"psi_max\x00": 0.2}})
    (path,) = error.field_errors
    assert "\x00" not in path and "\x00" not in error.message
    assert path == "analysis.thresholds.'psi_max\\x00'"
    error = refused({"thresholds": {"psi_max": "0.2\x00"}})
    assert "\x00" not in error.message and "must be a number" in error.message
    error = refused({"promql": {"requests": "sum(up)\x00"}})
    assert error.field_errors.keys() == {"analysis.promql.requests"}
    assert "control character" in error.message


def test_deep_nesting_is_refused_with_a_short_message():
    deep: object = 0.2
    for _ in range(60):
        deep = {"x": deep}
    error = refused({"thresholds": {"psi_max": deep}})
    assert list(error.field_errors) == ["analysis.thresholds.psi_max"]
    assert "must be a number, not {'x': {'x':" in error.message
    assert len(error.message) < 250  # the value is quoted cut short, not whole
    error = refused({"promql": {"requests": deep}})
    assert "must be a PromQL string" in error.message


def test_a_template_placeholder_slipway_does_not_fill_is_refused_now():
    error = refused({"promql": {"requests": 'sum(x{service="$servce"})'}})
    assert error.field_errors.keys() == {"analysis.promql.requests"}
    assert "uses $servce" in error.message
    error = refused({"promql": {"errors": "sum(x) * 5$"}})
    assert "write $$ for a literal dollar sign" in error.message


def test_not_a_mapping_is_refused():
    error = refused(["thresholds"])
    assert error.field_errors.keys() == {"analysis"}


def test_a_good_config_passes_and_is_what_the_judgement_uses():
    config = {
        "thresholds": {"psi_max": 0.3, "psi_watch": 0.15, "required": ["latency_p95"]},
        "promql": {"requests": 'sum(increase(my_requests{version="$revision"}[$window]))'},
    }
    check_analysis_config(config, environment="staging", runtime="custom")
    check_analysis_config({}, environment="staging", runtime="seldon")
    parsed = parse_analysis_config(config, environment="staging", runtime="custom")
    assert parsed.thresholds.psi_max == 0.3 and parsed.thresholds.required == ("latency_p95",)
    assert parsed.queries.get("requests").text == config["promql"]["requests"]


def test_the_judgement_still_raises_its_own_errors_for_the_controller_to_pause_on():
    # The step controller pauses on ThresholdError / MetricsConfigError: unchanged.
    with pytest.raises(ThresholdError):
        parse_analysis_config({"thresholds": {"psi_max": -1}}, environment="s", runtime="custom")
    with pytest.raises(MetricsConfigError):
        parse_analysis_config({"nope": 1}, environment="s", runtime="custom")
