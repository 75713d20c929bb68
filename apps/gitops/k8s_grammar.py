"""The grammars the Kubernetes API server and the container runtime enforce, in Python.

Slipway refuses a manifest before anyone approves it if the cluster would refuse it
later, and must not refuse one the cluster would take. Each check here is written from
the upstream rule it cites (our own code, not a port):

- quantities: ``k8s.io/apimachinery/pkg/api/resource/quantity.go`` (``ParseQuantity``
  and the BNF in the ``Quantity`` comment) and ``suffix.go``;
- label keys, label values and annotation keys: ``k8s.io/apimachinery/pkg/util/
  validation/validation.go`` (``IsQualifiedName``, ``IsValidLabelValue``,
  ``IsDNS1123Subdomain``) and ``pkg/api/validation/objectmeta.go``
  (``ValidateAnnotations``, ``TotalAnnotationSizeLimitB``);
- OCI references: ``github.com/distribution/reference`` (``regexp.go``, ``reference.go``)
  and ``github.com/opencontainers/go-digest`` (registered algorithms), which is what a
  KServe ``oci://`` storage URI becomes: KServe strips ``oci://`` and runs the rest as
  the modelcar container's image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_UP, Context, Decimal

# --- quantities --------------------------------------------------------------------------
# quantity.go's BNF: <quantity> ::= <signedNumber><suffix>, <number> ::= <digits> |
# <digits>.<digits> | <digits>. | .<digits>, <suffix> ::= <binarySI> | <decimalExponent> |
# <decimalSI>. The BNF writes <decimalExponent> ::= "e" <signedNumber>, but ParseQuantity
# reads the exponent with strconv.ParseInt, so "1e1.5" is refused by the server (the CRD
# pattern controller-gen emits would let it through); we follow the parser.
_QUANTITY = re.compile(
    r"(?P<sign>[+-])?"
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# suffix.go converts the parsed exponent with int32(...): a larger one wraps around to an
# unrelated value, so it is refused here rather than silently meaning something else.
_MAX_EXPONENT = 2**31 - 1
# ParseQuantity caps a binarySI amount, silently, at 2^63-1 ("8Ei" parses as 2^63-1).
_MAX_BINARY = Decimal(2**63 - 1)
_NANO = Decimal("1e-9")
_QUANTITY_HINT = (
    "write a number with an optional sign, decimal point and one suffix: "
    "n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e9"
)


def _exact(digits: int) -> Context:
    """A decimal context wide enough that nothing a quantity needs is rounded: the
    digits written plus 2^60's 19, and exponents as far as int32 reaches either way."""
    return Context(prec=digits + 30, Emax=2 * _MAX_EXPONENT, Emin=-2 * _MAX_EXPONENT)


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity, exactly as the API server reads it.

    Accepts what ``resource.ParseQuantity`` accepts for the grammar in ``quantity.go``:
    an optional ``+``/``-``, digits with an optional decimal point (``1.``, ``.5``), and
    at most one suffix: decimal SI ``n u m k M G T P E``, binary SI ``Ki .. Ei`` or a
    decimal exponent ``e``/``E`` with an optional sign and integer digits. Like the
    server, a non-zero value finer than a nano-unit is rounded away from zero to 1n, and
    a binary-SI amount is capped at 2^63-1.

    Two places where the upstream scanner accepts strings its own BNF excludes are
    refused here: a bare suffix (``"Mi"``) or a lone sign or point (``"-"``, ``"."``),
    which it reads as zero; both are typos, and the CRD pattern refuses them too.

    Raises ``ValueError`` with a sentence saying what is wrong.
    """
    if not isinstance(text, str):
        raise ValueError(f"a quantity is text, not {type(text).__name__}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity: {_QUANTITY_HINT}")
    number = match["number"]
    if number.endswith("."):
        number += "0"
    elif number.startswith("."):
        number = "0" + number
    amount = Decimal(number)  # exact: Decimal(str) never rounds
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SI:
        amount = _exact(len(number)).multiply(amount, Decimal(2 ** _BINARY_SI[suffix]))
    else:
        exponent = _DECIMAL_SI.get(suffix)
        if exponent is None:  # e<int> / E<int>
            exponent = int(suffix[1:])
            if abs(exponent) > _MAX_EXPONENT:
                raise ValueError(
                    f"{text!r} has an exponent out of range: the API server reads it as a "
                    f"32-bit number (at most {_MAX_EXPONENT})"
                )
        amount = amount.scaleb(exponent, _exact(len(number)))
    if not amount:
        return Decimal(0)  # "0", "-0", "0e5", "0.000Ki": no negative zero
    if amount.as_tuple().exponent < -9:  # type: ignore[operator]
        amount = amount.quantize(_NANO, rounding=ROUND_UP, context=_exact(len(number)))
    if suffix in _BINARY_SI and amount > _MAX_BINARY:
        amount = _MAX_BINARY
    # copy_negate, not unary minus: that rounds in the default context, whose exponent
    # limit (999999) is far below what the API server takes (e.g. "-.1E2000000").
    return amount.copy_negate() if match["sign"] == "-" else amount


# --- names, label values, annotations ----------------------------------------------------
# validation.go: qualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", at most 63.
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
QUALIFIED_NAME_MAX_LENGTH = 63
# validation.go: dns1123LabelFmt joined by "." (dns1123SubdomainFmt), at most 253 in all.
_DNS1123_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*")
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
LABEL_VALUE_MAX_LENGTH = 63
# objectmeta.go: TotalAnnotationSizeLimitB = 256 * (1 << 10).
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def qualified_name_problems(key: str) -> list[str]:
    """Why ``key`` is not a Kubernetes qualified name (a label key), or ``[]``.

    ``IsQualifiedName``: an optional prefix and ``/``, then a name. The prefix is a
    DNS-1123 subdomain (lowercase alphanumerics, ``-`` and ``.``, at most 253 characters);
    the name is at most 63 characters of ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``. A
    second ``/`` is an error.
    """
    if not isinstance(key, str):
        return ["a key must be text"]
    parts = key.split("/")
    if len(parts) > 2:
        return [
            f"{key!r} has more than one '/': write an optional DNS subdomain prefix, one "
            "'/', and a name (e.g. 'example.com/my-name')"
        ]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append(f"{key!r} has an empty prefix before '/'")
        elif len(prefix) > DNS1123_SUBDOMAIN_MAX_LENGTH:
            problems.append(
                f"the prefix of {key!r} is {len(prefix)} characters; at most "
                f"{DNS1123_SUBDOMAIN_MAX_LENGTH}"
            )
        elif not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            problems.append(
                f"the prefix {prefix!r} is not a DNS subdomain: lowercase letters, digits, "
                "'-' and '.', starting and ending with a letter or digit"
            )
    if not name:
        problems.append(f"{key!r} has an empty name")
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        problems.append(
            f"the name part of {key!r} is {len(name)} characters; at most "
            f"{QUALIFIED_NAME_MAX_LENGTH}"
        )
    elif not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            f"the name part of {key!r} must be letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit"
        )
    return problems


def is_qualified_name(key: str) -> bool:
    """``IsQualifiedName``: may ``key`` be a label key? See ``qualified_name_problems``."""
    return not qualified_name_problems(key)


def label_value_problems(value: str) -> list[str]:
    """Why ``value`` is not a valid label value, or ``[]``.

    ``IsValidLabelValue``: empty, or at most 63 characters of
    ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``.
    """
    if not isinstance(value, str):
        return ["a label value must be text"]
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        return [f"the value is {len(value)} characters; at most {LABEL_VALUE_MAX_LENGTH}"]
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return [
            f"{value!r} must be empty or letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        ]
    return []


def label_value_ok(value: str) -> bool:
    """``IsValidLabelValue``: may ``value`` be a label value? See ``label_value_problems``."""
    return not label_value_problems(value)


def annotation_problems(annotations: Mapping[str, str]) -> list[str]:
    """Why the API server would refuse ``annotations``, or ``[]``.

    ``ValidateAnnotations``: every key, lowercased first (so ``Example.COM/Note`` is
    fine, unlike in a label key), is a qualified name; and the keys and values together
    take at most 256 KiB (``TotalAnnotationSizeLimitB``, counted in bytes).
    """
    problems = []
    total = 0
    for key, value in annotations.items():
        if not isinstance(key, str):
            problems.append(f"annotation key {key!r} must be text")
            continue
        problems += [f"annotation key {key!r}: {p}" for p in qualified_name_problems(key.lower())]
        total += len(key.encode("utf-8"))
        if isinstance(value, str):
            total += len(value.encode("utf-8"))
        else:
            problems.append(f"annotation {key!r} must have a text value")
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        problems.append(
            f"annotations take {total} bytes; the API server allows at most "
            f"{TOTAL_ANNOTATION_SIZE_LIMIT} (256 KiB) per object"
        )
    return problems


# --- OCI references ----------------------------------------------------------------------
# distribution/reference regexp.go, in its own words:
#   domain-component := [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
#   host := domain-name | "[" IPv6 "]";  domain := host [":" port]
#   path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+
#   tag := [\w][\w.-]{0,127}
#   digest := algorithm ":" hex, algorithm := [A-Za-z][A-Za-z0-9]* ([-_+.] same)*,
#             hex := [0-9a-fA-F]{32,}
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?"
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?",
    re.ASCII,
)
# reference.go: NameTotalLengthMax.
OCI_NAME_MAX_LENGTH = 255
# go-digest's registered algorithms and their encodings: lowercase hex of exact length.
DIGEST_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
OCI_PREFIX = "oci://"


@dataclass(frozen=True)
class OciReference:
    """The parts of ``oci://[domain/]path[:tag][@digest]``; absent parts are ``""``."""

    domain: str
    path: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def pinned(self) -> bool:
        return bool(self.digest)


def oci_reference(uri: str) -> OciReference:
    """Parse a KServe ``oci://`` storage URI into its image reference parts.

    KServe's modelcar strips ``oci://`` and runs the rest as a container image, so the
    rest must be a reference in the ``distribution/reference`` grammar: an optional
    registry host (with port) and ``/``, a lowercase repository path, an optional tag,
    an optional digest (a tag, a digest, or both: with both the digest wins, as in the
    runtime). The name is at most 255 characters. A digest must use a registered
    algorithm with its exact encoding (``go-digest``): ``sha256:`` and 64, ``sha384:``
    and 96, ``sha512:`` and 128 lowercase hex digits.

    Raises ``ValueError`` saying what is wrong.
    """
    if not isinstance(uri, str) or not uri.startswith(OCI_PREFIX):
        raise ValueError(f"{uri!r} does not start with {OCI_PREFIX!r}")
    reference = uri[len(OCI_PREFIX) :]
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise ValueError(
            f"{reference!r} is not an image reference: write "
            "'registry.example.com/team/model:tag' or '...@sha256:<64 hex digits>'"
        )
    domain, path = match["domain"] or "", match["path"]
    name = f"{domain}/{path}" if domain else path
    if len(name) > OCI_NAME_MAX_LENGTH:
        raise ValueError(
            f"the repository name is {len(name)} characters; at most {OCI_NAME_MAX_LENGTH}"
        )
    digest = match["digest"] or ""
    if digest:
        algorithm, encoded = digest.split(":", 1)
        if algorithm not in DIGEST_ALGORITHMS:
            raise ValueError(
                f"digest algorithm {algorithm!r} is not supported; use one of "
                f"{', '.join(DIGEST_ALGORITHMS)}"
            )
        length = DIGEST_ALGORITHMS[algorithm]
        if len(encoded) != length:
            raise ValueError(
                f"a {algorithm} digest has {length} hex digits, this one {len(encoded)}"
            )
        if encoded != encoded.lower():
            raise ValueError(f"a {algorithm} digest is written in lowercase hex")
    return OciReference(domain=domain, path=path, tag=match["tag"] or "", digest=digest)
