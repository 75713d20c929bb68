"""Analysis thresholds from a service's config: defaults, and errors naming the key."""

from __future__ import annotations

import pytest

from apps.metrics.analysis import ThresholdError, Thresholds


def test_defaults_are_the_documented_ones():
    t = Thresholds.from_dict(None)
    assert t == Thresholds()
    assert (t.latency_p95_ratio_max, t.error_rate_max, t.error_rate_ratio_max) == (1.2, 0.01, 1.5)
    assert (t.cost_per_1k_ratio_max, t.psi_max, t.psi_watch, t.agreement_min) == (
        1.25,
        0.2,
        0.1,
        0.95,
    )
    assert (t.min_requests, t.min_predictions) == (200, 100)
    assert t.required == ("latency_p95", "error_rate", "output_psi")


def test_keys_given_override_and_the_rest_keep_defaults():
    t = Thresholds.from_dict(
        {"latency_p95_ratio_max": "1.3", "min_requests": 500, "required": ["agreement"]}
    )
    assert t.latency_p95_ratio_max == 1.3
    assert t.min_requests == 500 and isinstance(t.min_requests, int)
    assert t.required == ("agreement",)
    assert t.psi_max == 0.2


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"latency_ratio": 1.2}, "latency_ratio", "Unknown analysis threshold 'latency_ratio'"),
        ({"latency_p95_ratio_max": 0.9}, "latency_p95_ratio_max", "at least 1"),
        ({"latency_p95_ratio_max": "fast"}, "latency_p95_ratio_max", "must be a number"),
        ({"latency_p95_ratio_max": True}, "latency_p95_ratio_max", "must be a number"),
        ({"error_rate_max": 1.5}, "error_rate_max", "between 0 and 1"),
        ({"error_rate_max": float("nan")}, "error_rate_max", "finite"),
        ({"psi_max": 0}, "psi_max", "above 0"),
        ({"min_requests": 0}, "min_requests", "whole number"),
        ({"min_predictions": 10.5}, "min_predictions", "whole number"),
        ({"required": "latency_p95"}, "required", "list of check names"),
        ({"required": ["latency"]}, "required", "unknown checks ['latency']"),
        ({"required": []}, "required", "at least one check"),
        ({"psi_watch": 0.3}, "psi_watch", "must not exceed psi_max"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(data, key, words):
    with pytest.raises(ThresholdError) as caught:
        Thresholds.from_dict(data)
    assert words in caught.value.message
    assert key in caught.value.message
    assert list(caught.value.field_errors) == [key]


def test_every_bad_key_is_reported_for_a_form():
    with pytest.raises(ThresholdError) as caught:
        Thresholds.from_dict({"psi_max": -1, "agreement_min": 2, "nope": 1})
    assert set(caught.value.field_errors) == {"psi_max", "agreement_min", "nope"}


def test_not_a_mapping_is_refused():
    with pytest.raises(ThresholdError, match="mapping"):
        Thresholds.from_dict([("psi_max", 0.2)])


def test_as_dict_round_trips():
    t = Thresholds.from_dict({"psi_max": 0.25, "required": ["latency_p95"]})
    assert Thresholds.from_dict(t.as_dict()) == t


def test_a_lower_psi_limit_alone_says_the_default_watch_level_must_follow():
    with pytest.raises(ThresholdError, match=r"psi_watch \(0.1, the default; set it too\)"):
        Thresholds.from_dict({"psi_max": 0.05})
    t = Thresholds.from_dict({"psi_max": 0.05, "psi_watch": 0.02})
    assert (t.psi_max, t.psi_watch) == (0.05, 0.02)
