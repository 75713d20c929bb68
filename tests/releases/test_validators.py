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
