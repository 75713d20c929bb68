import re

from django.core.exceptions import ValidationError

# RFC 1123 label, the form Kubernetes requires for namespaces and most object names.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# Device names Windows reserves in every folder: a GitOps checkout on Windows cannot hold
# environments/con/ or environments/staging/lpt1/, whatever the letter case.
RESERVED_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)


def validate_dns1123_label(value: str) -> None:
    """Reject anything that is not a DNS-1123 label, or is a reserved device name.

    Service and environment names become folder names in the GitOps repository and
    Kubernetes object names, so this is also what keeps ``..``, ``/``, NUL, look-alike
    unicode letters and ``.git`` out of written paths. Whitespace around a name is
    refused with its own message: trimming it would save a name other than the one typed.
    """
    if isinstance(value, str) and value and value != value.strip():
        raise ValidationError(
            "%(value)r has leading or trailing whitespace; names are used exactly as "
            "typed, so remove it.",
            code="name_whitespace",
            params={"value": value},
        )
    if isinstance(value, str) and value.lower() in RESERVED_DEVICE_NAMES:
        raise ValidationError(
            "%(value)r is a reserved device name on Windows (CON, PRN, AUX, NUL, COM1-9, "
            "LPT1-9): a GitOps checkout there could not hold its folder. Choose another name.",
            code="name_reserved",
            params={"value": value},
        )
    if not isinstance(value, str) or not _DNS1123_LABEL.fullmatch(value):
        raise ValidationError(
            "%(value)r is not a valid name: use 1 to 63 lowercase letters a-z, digits and "
            "'-', starting and ending with a letter or digit (e.g. 'churn-model').",
            code="invalid_dns1123",
            params={"value": value},
        )


_DNS1035_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_service_name(value: str) -> None:
    """Service names also name Kubernetes Services and InferenceServices, which must be
    DNS-1035 labels: a DNS-1123 label that starts with a letter."""
    validate_dns1123_label(value)
    if not _DNS1035_LABEL.fullmatch(value):
        raise ValidationError(
            "%(value)r must start with a letter: it becomes a Kubernetes Service name.",
            code="invalid_dns1035",
            params={"value": value},
        )
