import pytest
from django.core.exceptions import ValidationError

from apps.releases.validators import validate_dns1123_label, validate_service_name


@pytest.mark.parametrize("name", ["churn-model", "a", "m2", "a" * 63])
def test_good_names(name):
    validate_dns1123_label(name)
    validate_service_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "../etc",
        "a/b",
        "a\x00b",
        ".git",
        "Churn",
        "churn_model",
        "-churn",
        "churn-",
        "churn.model",
        "\u0441hurn",  # Cyrillic es, looks like "churn"
        "a" * 64,
        "churn\n",
        " churn",
    ],
)
def test_names_that_could_escape_a_folder_or_break_kubernetes_are_refused(name):
    with pytest.raises(ValidationError):
        validate_dns1123_label(name)


def test_service_names_must_start_with_a_letter():
    validate_dns1123_label("9lives")
    with pytest.raises(ValidationError, match="start with a letter"):
        validate_service_name("9lives")


@pytest.mark.parametrize(
    "name", ["con", "CON", "prn", "aux", "nul", "com1", "com9", "lpt1", "lpt9", "Lpt5"]
)
def test_reserved_device_names_are_refused_whatever_the_case(name):
    with pytest.raises(ValidationError, match="reserved device name"):
        validate_dns1123_label(name)
    with pytest.raises(ValidationError, match="reserved device name"):
        validate_service_name(name)


@pytest.mark.parametrize("name", ["console", "com10", "lpt0", "com", "auxiliary", "nul-model"])
def test_names_that_only_start_like_a_device_are_fine(name):
    validate_dns1123_label(name)


@pytest.mark.parametrize("name", [" svc", "svc\n", "svc ", "\tsvc"])
def test_whitespace_around_a_name_is_refused_with_its_own_message(name):
    with pytest.raises(ValidationError, match="leading or trailing whitespace"):
        validate_dns1123_label(name)
