"""controlplane/env.py: every typed reader takes good values, refuses bad ones loudly
(ImproperlyConfigured naming the variable), and reads secrets from ``<NAME>_FILE``."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_float, env_int, env_json, env_list, env_str

VAR = "SLIPWAY_TEST_ENV_VALUE"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    monkeypatch.delenv(f"{VAR}_FILE", raising=False)

    def put(value: str) -> None:
        monkeypatch.setenv(VAR, value)

    return put


def refused(reader, *args, match: str = VAR, **kwargs) -> str:
    with pytest.raises(ImproperlyConfigured, match=match) as caught:
        reader(VAR, *args, **kwargs)
    return str(caught.value)


# --- env_str ------------------------------------------------------------------------------


def test_str_reads_the_value_or_the_default(env):
    assert env_str(VAR, "fallback") == "fallback"
    env("  kept as given ")
    assert env_str(VAR, "fallback") == "  kept as given "
    env("")
    assert env_str(VAR, "fallback") == ""  # set but empty is a value, not "unset"


def test_str_without_default_is_required(env):
    assert "is required" in refused(env_str)


# --- env_bool -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_bool_true_spellings(env, value):
    env(value)
    assert env_bool(VAR, False) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off", ""])
def test_bool_false_spellings(env, value):
    env(value)
    assert env_bool(VAR, True) is False


def test_bool_default_when_unset(env):
    assert env_bool(VAR, True) is True
    assert env_bool(VAR, False) is False


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "tru"])
def test_bool_refuses_anything_else(env, value):
    env(value)
    assert "is not a boolean" in refused(env_bool, False)


# --- env_int / env_float ------------------------------------------------------------------


def test_int_reads_numbers_and_defaults(env):
    assert env_int(VAR, 7) == 7
    env("42")
    assert env_int(VAR, 7) == 42
    env(" -3 ")
    assert env_int(VAR, 7) == -3


@pytest.mark.parametrize("value", ["12a", "1.5", "", "ten"])
def test_int_refuses_what_is_not_an_integer(env, value):
    env(value)
    assert "is not an integer" in refused(env_int, 7)


def test_int_refuses_values_below_the_minimum(env):
    env("4")
    assert "below the minimum 5" in refused(env_int, 10, minimum=5)
    env("5")
    assert env_int(VAR, 10, minimum=5) == 5


def test_float_reads_numbers_and_defaults(env):
    assert env_float(VAR, 0.5) == 0.5
    env("2.25")
    assert env_float(VAR, 0.5) == 2.25
    env("3")
    assert env_float(VAR, 0.5) == 3.0


@pytest.mark.parametrize("value", ["fast", "1,5", ""])
def test_float_refuses_what_is_not_a_number(env, value):
    env(value)
    assert "is not a number" in refused(env_float, 1.0)


def test_float_refuses_values_below_the_minimum(env):
    env("0.1")
    assert "below the minimum" in refused(env_float, 1.0, minimum=0.5)


# --- env_list -----------------------------------------------------------------------------


def test_list_splits_on_commas_and_drops_blanks(env):
    default = ["localhost"]
    got = env_list(VAR, default)
    assert got == ["localhost"] and got is not default  # a copy: settings may extend it
    env(" a.example.com, ,b.example.com,")
    assert env_list(VAR, default) == ["a.example.com", "b.example.com"]
    env("")
    assert env_list(VAR, default) == []


# --- env_json -----------------------------------------------------------------------------


def test_json_reads_objects_and_lists(env):
    assert env_json(VAR, {}) == {}
    env('{"latency": "histogram_quantile(0.99, x)"}')
    assert env_json(VAR, {}) == {"latency": "histogram_quantile(0.99, x)"}
    env('["a", 1]')
    assert env_json(VAR, []) == ["a", 1]
    env("   ")
    assert env_json(VAR, {"kept": 1}) == {"kept": 1}


def test_json_refuses_bad_json_naming_the_variable(env):
    env('{"latency": ')
    assert "is not valid JSON" in refused(env_json, {})


def test_json_refuses_the_wrong_shape(env):
    env('["a list"]')
    assert "must be a JSON dict" in refused(env_json, {})


# --- <NAME>_FILE secrets ------------------------------------------------------------------


def test_a_secret_comes_from_its_file_without_the_trailing_newline(env, monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    monkeypatch.setenv(f"{VAR}_FILE", str(secret))
    assert env_str(VAR) == "s3cret-value"


def test_every_reader_accepts_a_file(env, monkeypatch, tmp_path):
    path = tmp_path / "value"
    monkeypatch.setenv(f"{VAR}_FILE", str(path))
    for text, reader, args, expected in [
        ("17\n", env_int, (0,), 17),
        ("1.5\n", env_float, (0.0,), 1.5),
        ("yes\n", env_bool, (False,), True),
        ("a,b\n", env_list, ([],), ["a", "b"]),
        ('{"k": 1}\n', env_json, ({},), {"k": 1}),
    ]:
        path.write_text(text)
        assert reader(VAR, *args) == expected


def test_a_bad_value_in_a_file_names_the_variable(env, monkeypatch, tmp_path):
    path = tmp_path / "value"
    path.write_text("many\n")
    monkeypatch.setenv(f"{VAR}_FILE", str(path))
    assert "is not an integer" in refused(env_int, 1)


def test_a_missing_file_fails_naming_the_file_variable(env, monkeypatch, tmp_path):
    monkeypatch.setenv(f"{VAR}_FILE", str(tmp_path / "absent"))
    assert "cannot be read" in refused(env_str, "default", match=f"{VAR}_FILE")


def test_value_and_file_together_are_refused(env, monkeypatch, tmp_path):
    path = tmp_path / "value"
    path.write_text("from-file")
    env("from-env")
    monkeypatch.setenv(f"{VAR}_FILE", str(path))
    assert "not both" in refused(env_str, "default")


def test_an_empty_file_variable_means_no_file(env, monkeypatch):
    monkeypatch.setenv(f"{VAR}_FILE", "")
    assert env_str(VAR, "default") == "default"
