"""Serving configuration: layering, validation, and messages a person can act on."""

from __future__ import annotations

import pytest

from apps.gitops.config import ConfigError, merge_config, parse_serving_config
from apps.gitops.config.models import KEYS, MODELS, Input
from apps.gitops.runtimes import Runtime
from tests.gitops.conftest import IMAGE


def errors_of(runtime: Runtime, raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_serving_config(runtime, raw)
    return caught.value.errors


def test_merge_config_later_layers_win_dicts_merge_lists_replace():
    service = {
        "image": IMAGE,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "secret_refs": ["a", "b"],
        "env": {"A": "1"},
    }
    environment = {"resources": {"memory": "2Gi"}, "secret_refs": ["c"], "env": {"B": "2"}}
    target = {"env": {"A": None}, "replicas": {"min": 3}}

    merged = merge_config(service, environment, target)

    assert merged == {
        "image": IMAGE,
        "resources": {"cpu": "1", "memory": "2Gi"},
        "secret_refs": ["c"],
        "env": {"B": "2"},
        "replicas": {"min": 3},
    }
    assert service["resources"] == {"cpu": "1", "memory": "1Gi"}, "inputs must not change"
    assert service["env"] == {"A": "1"}


def test_defaults_and_normalisation():
    config = parse_serving_config(
        Runtime.CUSTOM,
        {
            "image": IMAGE,
            "resources": {"cpu": 1, "memory": "1Gi", "gpu": 1},
            "env": {"ZED": "z", "ALPHA": 3},
            "secret_refs": ["db", "db", "api"],
        },
    )
    assert config.port == 8080
    assert (config.min_replicas, config.max_replicas) == (1, 3)
    assert config.resources.requests() == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}
    assert config.resources.limits() == {"memory": "1Gi", "nvidia.com/gpu": "1"}
    assert config.env == (("ALPHA", "3"), ("ZED", "z"))
    assert config.secret_refs == ("api", "db")
    assert config.probes is not None and config.probes.liveness_path == "/healthz"


def test_bentoml_gets_its_own_port_and_probe_paths():
    config = parse_serving_config(Runtime.BENTOML, {"image": IMAGE})
    assert config.port == 3000
    assert (config.probes.readiness_path, config.probes.liveness_path) == ("/readyz", "/livez")


def test_unknown_keys_are_errors_not_silently_dropped():
    errors = errors_of(
        Runtime.CUSTOM, {"image": IMAGE, "replica": {"min": 2}, "resources": {"cpus": "1"}}
    )
    assert "replica" in errors and "Unknown setting" in errors["replica"]
    assert "resources.cpus" in errors


def test_keys_of_another_runtime_name_the_runtimes_that_use_them():
    errors = errors_of(Runtime.CUSTOM, {"image": IMAGE, "canary_percent": 10})
    assert "only by" in errors["canary_percent"]
    assert "kserve-sklearn" in errors["canary_percent"]


def test_every_problem_is_reported_at_once():
    errors = errors_of(
        Runtime.CUSTOM,
        {
            "image": "Not An Image",
            "port": 0,
            "replicas": {"min": 5, "max": 2},
            "resources": {"cpu": "lots"},
            "env": {"1BAD": "x"},
        },
    )
    assert {"image", "port", "replicas", "resources.cpu", "env.1BAD"} <= set(errors)


@pytest.mark.parametrize(
    "image, fragment",
    [
        ("registry.example.com/churn", "tag or a digest"),
        ("registry.example.com/churn:latest", "latest"),
        ("registry.example.com/churn:1.0\n---", "single line"),
        ("-oProxyCommand=x:1", "not an image reference"),
    ],
)
def test_image_references_must_be_immutable_and_plain(image, fragment):
    assert fragment in errors_of(Runtime.CUSTOM, {"image": image})["image"]


def test_pinned_image_is_recognised():
    pinned = parse_serving_config(Runtime.CUSTOM, {"image": IMAGE + "@sha256:" + "b" * 64})
    assert pinned.image_is_pinned
    assert not parse_serving_config(Runtime.CUSTOM, {"image": IMAGE}).image_is_pinned


@pytest.mark.parametrize("value", ["x\n---\nkind: Secret", "a\rb", "nul\x00", "tab\tin", "\u2028"])
def test_strings_with_line_breaks_or_control_characters_are_refused(value):
    errors = errors_of(Runtime.CUSTOM, {"image": IMAGE, "env": {"NOTE": value}})
    assert "single line" in errors["env.NOTE"]


def test_plain_strings_that_look_like_yaml_are_kept_verbatim():
    config = parse_serving_config(Runtime.CUSTOM, {"image": IMAGE, "env": {"NOTE": "a: b"}})
    assert config.env == (("NOTE", "a: b"),)


@pytest.mark.parametrize(
    "name", ["DB_PASSWORD", "API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"]
)
def test_env_names_that_look_secret_point_to_secret_refs(name):
    assert (
        "secret_refs"
        in errors_of(Runtime.CUSTOM, {"image": IMAGE, "env": {name: "x"}})[f"env.{name}"]
    )


def test_env_name_with_a_secret_word_inside_another_word_is_fine():
    config = parse_serving_config(Runtime.CUSTOM, {"image": IMAGE, "env": {"TOKENIZER_PATH": "/t"}})
    assert config.env == (("TOKENIZER_PATH", "/t"),)


def test_reserved_env_names_are_refused():
    assert (
        "Slipway"
        in errors_of(Runtime.CUSTOM, {"image": IMAGE, "env": {"MODEL_URI": "x"}})["env.MODEL_URI"]
    )


def test_booleans_are_not_numbers():
    assert "port" in errors_of(Runtime.CUSTOM, {"image": IMAGE, "port": True})


@pytest.mark.parametrize("name", ["Bad_Name", "../up", "a" * 300, "x\ny"])
def test_secret_ref_names_must_be_kubernetes_names(name):
    assert "secret_refs[0]" in errors_of(Runtime.CUSTOM, {"image": IMAGE, "secret_refs": [name]})


def test_batch_needs_a_cron_schedule():
    assert "required" in errors_of(Runtime.BATCH, {"image": IMAGE})["schedule"]
    assert "cron" in errors_of(Runtime.BATCH, {"image": IMAGE, "schedule": "every day"})["schedule"]
    assert parse_serving_config(Runtime.BATCH, {"image": IMAGE, "schedule": "@daily"}).schedule


def test_streaming_needs_kafka_and_may_scale_to_zero():
    assert "kafka" in errors_of(Runtime.STREAMING, {"image": IMAGE})
    config = parse_serving_config(
        Runtime.STREAMING,
        {
            "image": IMAGE,
            "replicas": {"min": 0, "max": 4},
            "kafka": {
                "bootstrap_servers": ["k1:9092", "k2:9092"],
                "topic": "t",
                "consumer_group": "g",
                "lag_threshold": 50,
            },
        },
    )
    assert config.min_replicas == 0
    assert config.kafka.bootstrap_servers == ("k1:9092", "k2:9092")
    errors = errors_of(
        Runtime.STREAMING,
        {"image": IMAGE, "kafka": {"bootstrap_servers": "no-port", "topic": "t"}},
    )
    assert {"kafka.bootstrap_servers[0]", "kafka.consumer_group"} <= set(errors)


def test_online_runtimes_keep_at_least_one_replica():
    assert "replicas.min" in errors_of(Runtime.CUSTOM, {"image": IMAGE, "replicas": {"min": 0}})


def test_canary_percent_range():
    assert parse_serving_config(Runtime.KSERVE_SKLEARN, {"canary_percent": 10}).canary_percent == 10
    assert "canary_percent" in errors_of(Runtime.KSERVE_SKLEARN, {"canary_percent": 101})


@pytest.mark.parametrize(
    "uri, fragment",
    [("runs:/abc/model", "cannot be fetched"), ("s3://user:pw@bucket/m", "credentials")],
)
def test_storage_uri_must_be_fetchable_and_credential_free(uri, fragment):
    assert fragment in errors_of(Runtime.KSERVE_SKLEARN, {"storage_uri": uri})["storage_uri"]


def test_unknown_runtime():
    with pytest.raises(ConfigError) as caught:
        parse_serving_config("tensorflow-lite", {})
    assert "runtime" in caught.value.errors


@pytest.mark.parametrize(
    "amount, written",
    [
        ("500n", "500n"),
        ("1e9", "1e9"),
        ("1Ei", "1Ei"),
        ("100u", "100u"),
        ("1.5", "1.5"),
        ("+1", "+1"),
        ("0.5Gi", "0.5Gi"),
        (".5", ".5"),
        ("250m", "250m"),
        (2, "2"),
        (0.5, "0.5"),
        (12345678, "12345678"),  # every digit kept, not '1.23457e+07'
    ],
)
def test_every_kubernetes_quantity_is_accepted_as_written(amount, written):
    config = parse_serving_config(
        Runtime.CUSTOM,
        {
            "image": IMAGE,
            "resources": {"cpu": amount, "memory": amount, "limits": {"memory": amount}},
        },
    )
    assert config.resources.requests()["cpu"] == written
    assert config.resources.limits()["memory"] == written


@pytest.mark.parametrize("amount", ["0", "0m", "0Gi", "-1", "-500m", 0, 0.0, "0.0e5"])
def test_zero_or_negative_cpu_and_memory_are_refused(amount):
    errors = errors_of(
        Runtime.KSERVE_SKLEARN,
        {"resources": {"cpu": amount, "memory": amount, "limits": {"cpu": amount}}},
    )
    for path in ("resources.cpu", "resources.memory", "resources.limits.cpu"):
        assert "not above zero" in errors[path]


@pytest.mark.parametrize("amount", ["1.5.5", "Mi", "1MiB", "--1", "1e1.5", "1K", "lots", True])
def test_malformed_quantities_are_refused_with_the_field_path(amount):
    errors = errors_of(
        Runtime.CUSTOM,
        {"image": IMAGE, "resources": {"cpu": amount, "limits": {"memory": amount}}},
    )
    assert "Write CPU as cores" in errors["resources.cpu"]
    assert "Write memory with a unit" in errors["resources.limits.memory"]
    if isinstance(amount, str):
        assert "not a Kubernetes quantity" in errors["resources.cpu"]


def test_kserve_scaling_keys_are_checked_for_shape():
    config = parse_serving_config(
        Runtime.KSERVE_SKLEARN,
        {"scale_metric": "rps", "scale_target": 50, "autoscaler_class": "kpa"},
    )
    assert (config.scale_metric, config.scale_target, config.autoscaler_class) == ("rps", 50, "kpa")
    errors = errors_of(
        Runtime.KSERVE_SKLEARN,
        {"scale_metric": "gpu", "scale_target": 0, "autoscaler_class": "keda"},
    )
    assert {"scale_metric", "scale_target", "autoscaler_class"} <= set(errors)


def test_target_cpu_utilization_on_kserve_asks_for_cpu_scaling():
    config = parse_serving_config(Runtime.KSERVE_SKLEARN, {"target_cpu_utilization": 60})
    assert config.scale_metric == "cpu"
    errors = errors_of(
        Runtime.KSERVE_SKLEARN, {"target_cpu_utilization": 60, "scale_metric": "concurrency"}
    )
    assert "scale_target" in errors["target_cpu_utilization"]


def test_seldon_storage_secret_is_a_secret_name():
    assert (
        parse_serving_config(Runtime.SELDON, {"storage_secret": "minio-secret"}).storage_secret
        == "minio-secret"
    )
    assert "storage_secret" in errors_of(Runtime.SELDON, {"storage_secret": "Bad Name"})
    assert (
        "only by: seldon"
        in errors_of(Runtime.KSERVE_SKLEARN, {"storage_secret": "s"})["storage_secret"]
    )


@pytest.mark.parametrize(
    "uri",
    ["s3://models/churn/4", "gs://b/m", "minio:models/churn/4", "myremote://bucket/path"],
)
def test_seldon_storage_uris_are_rclone_remotes(uri):
    assert parse_serving_config(Runtime.SELDON, {"storage_uri": uri}).storage_uri == uri


def test_streaming_probe_types():
    base = {
        "image": IMAGE,
        "kafka": {"bootstrap_servers": "k:9092", "topic": "t", "consumer_group": "g"},
    }
    config = parse_serving_config(
        Runtime.STREAMING, {**base, "probes": {"type": "exec", "command": ["true"]}}
    )
    assert (config.probes.type, config.probes.command) == ("exec", ("true",))
    assert "probes.command" in errors_of(Runtime.STREAMING, {**base, "probes": {"type": "exec"}})
    assert "probes.readiness_path" in errors_of(
        Runtime.STREAMING, {**base, "probes": {"type": "none", "readiness_path": "/r"}}
    )
    no_probes = {**base, "port": 9000, "probes": {"type": "none"}}
    assert "port" in errors_of(Runtime.STREAMING, no_probes)
    assert "probes.type" in errors_of(
        Runtime.CUSTOM, {"image": IMAGE, "probes": {"type": "exec", "command": ["true"]}}
    )


def test_seldon_requirements_cannot_be_empty():
    assert (
        "at least one capability" in errors_of(Runtime.SELDON, {"requirements": []})["requirements"]
    )
    assert parse_serving_config(Runtime.SELDON, {"requirements": ["sklearn"]}).requirements == (
        "sklearn",
    )


# --- the typed models behind the parser --------------------------------------------------
def _models_in(model: type, seen: set) -> set:
    seen.add(model)
    for field in model.model_fields.values():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, Input) and nested not in seen:
            _models_in(nested, seen)
    return seen


def test_every_input_model_forbids_unknown_keys_and_is_frozen():
    models = set()
    for model in set(MODELS.values()):
        models |= _models_in(model, set())
    assert {"Resources", "Limits", "Replicas", "Probes", "Kafka"} <= {m.__name__ for m in models}
    for model in models:
        assert model.model_config["extra"] == "forbid", model
        assert model.model_config["frozen"] is True, model
    assert set(MODELS) == set(Runtime)


def test_problems_across_fields_are_named_with_the_others():
    kafka = {"bootstrap_servers": "k:9092", "topic": "t", "consumer_group": "g"}
    errors = errors_of(
        Runtime.STREAMING,
        {
            "image": "Not An Image",
            "kafka": kafka,
            "port": 9000,
            "probes": {"type": "none", "timeout": 3, "readiness_path": "/r"},
        },
    )
    assert {"image", "port", "probes.timeout", "probes.readiness_path"} <= set(errors)
    assert "Only http probes use a port" in errors["port"]
    errors = errors_of(
        Runtime.KSERVE_SKLEARN,
        {
            "scale_metric": "concurrency",
            "target_cpu_utilization": 60,
            "canary_percent": 101,
            "replicas": {"min": 4, "max": 2, "maximum": 9},
        },
    )
    assert {"target_cpu_utilization", "canary_percent", "replicas", "replicas.maximum"} <= set(
        errors
    )
    assert errors["replicas"] == "min (4) is larger than max (2)."


def test_a_fields_own_problem_wins_over_a_rule_across_fields():
    kafka = {"bootstrap_servers": "k:9092", "topic": "t", "consumer_group": "g"}
    errors = errors_of(
        Runtime.STREAMING,
        {"image": IMAGE, "kafka": kafka, "port": 0, "probes": {"type": "none"}},
    )
    assert errors["port"] == "0 is out of range: use a number from 1 to 65535."
    errors = errors_of(Runtime.KSERVE_SKLEARN, {"scale_metric": "rps", "target_cpu_utilization": 0})
    assert "out of range" in errors["target_cpu_utilization"]


def test_a_refused_probe_type_is_the_only_probe_problem_named():
    errors = errors_of(
        Runtime.CUSTOM,
        {"image": IMAGE, "probes": {"type": "grpc", "initial_delay_seconds": -1}},
    )
    assert errors == {"probes.type": "Use one of: http. This runtime serves HTTP."}


def test_keys_that_are_not_text_are_named_as_written():
    errors = errors_of(Runtime.CUSTOM, {"image": IMAGE, 1: "x", "env": {5: "x"}})
    assert errors["1"].startswith("Unknown setting. Known settings: ")
    assert "Variable names" in errors["env.5"]


def test_keys_of_another_family_list_every_runtime_that_takes_them():
    errors = errors_of(Runtime.BATCH, {"image": IMAGE, "schedule": "@daily", "port": 80})
    assert errors["port"] == (
        "Not used by the batch runtime (only by: bentoml, custom, fastapi, streaming)."
    )


BAD_VALUES = [None, True, -1, 10**9, 2.5, "", "x", "a\nb", [], ["Bad Name", 3], {}, {"k": 1}]


@pytest.mark.parametrize("runtime", list(Runtime))
def test_no_pydantic_wording_reaches_the_author(runtime):
    """Every problem is worded by us: pydantic's sentences are for Python programmers."""
    pydantic_words = ("Input should", "Extra inputs", "Field required", "Keys should", "[type=")
    base = {
        Runtime.BATCH: {"image": IMAGE, "schedule": "@daily"},
        Runtime.STREAMING: {
            "image": IMAGE,
            "kafka": {"bootstrap_servers": "k:9092", "topic": "t", "consumer_group": "g"},
        },
    }.get(runtime, {"image": IMAGE})
    nested = {
        "replicas": ("min", "max"),
        "resources": ("cpu", "memory", "gpu", "limits"),
        "probes": ("type", "readiness_path", "command", "initial_delay_seconds"),
        "kafka": ("bootstrap_servers", "topic", "lag_threshold", "offset_reset_policy"),
    }
    messages = []
    for key in KEYS:
        for value in BAD_VALUES:
            raws = [{**base, key: value}]
            raws += [{**base, key: {sub: value}} for sub in nested.get(key, ())]
            for raw in raws:
                try:
                    parse_serving_config(runtime, raw)
                except ConfigError as exc:
                    messages += exc.errors.values()
    assert messages
    leaked = [m for m in messages if any(word in m for word in pydantic_words)]
    assert not leaked, leaked[:5]
