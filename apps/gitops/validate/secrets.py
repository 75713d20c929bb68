"""The secret scanner: PEM private keys, cloud and forge tokens, credentials in URLs,
and any of the control plane's own secrets, in clear or base64, over the raw text and
every parsed string. Findings name the file and place, never the secret."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

# Shorter forbidden values would match ordinary words; the control plane's secrets are long.
MIN_FORBIDDEN_LENGTH = 8

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[A-Z0-9]{16}\b")),
    (
        "an AWS secret access key",
        re.compile(r"(?i)aws_?secret_?access_?key\W{0,4}[A-Za-z0-9/+=]{40}\b"),
    ),
    (
        "a GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe secret key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}")),
    (
        "a JSON web token",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    # The scheme is bounded: unbounded, a long run of letters (a 256 KiB annotation) made
    # this quadratic, minutes per file. A longer scheme still matches on its last 32.
    (
        "a password in a URL",
        re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^/\s:@]+:[^/\s@]+@"),
    ),
)


# --- the secret scanner ----------------------------------------------------------------
def forbidden_needles(values: frozenset[str] | set[str]) -> list[str]:
    """The forbidden values and their base64 forms (how a Secret or an HTTP Basic
    header would carry them).

    A value inside a longer base64 blob ("user:token") starts at any byte offset, and
    each offset modulo 3 gives a different character stream; so the needles are the
    characters that depend on the value alone at each of the three alignments, in both
    the standard and the URL-safe alphabet. (Before, only offset 0 was matched:
    base64("git:" + token) went through; found by tests/hardening/test_security_gates.py.)
    """
    needles: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_FORBIDDEN_LENGTH:
            continue
        needles.add(value)
        raw = value.encode("utf-8")
        for shift, first_clean_char in ((0, 0), (1, 2), (2, 3)):
            encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
            # Only whole 3-byte groups: the last group also depends on what follows.
            whole = (shift + len(raw)) // 3 * 4
            needle = encoded[first_clean_char:whole]
            if len(needle) >= MIN_FORBIDDEN_LENGTH:
                needles.add(needle)
                needles.add(needle.translate(_URLSAFE))
    return sorted(needles)


_URLSAFE = str.maketrans("+/", "-_")


def _findings(text: str, forbidden: list[str]) -> list[str]:
    found = [label for label, pattern in SECRET_PATTERNS if pattern.search(text)]
    if any(needle in text for needle in forbidden):
        found.append("one of the control plane's own secrets")
    return found


def secret_findings(
    text: str, forbidden_values: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """What secrets ``text`` seems to hold, as labels ("a GitHub token", "one of the
    control plane's own secrets"), never the secret itself. For text that is committed
    but is not a manifest: commit messages, reasons. A base64 blob wrapped over several
    lines is caught too."""
    forbidden = forbidden_needles(forbidden_values)
    found = _findings(text, forbidden)
    compact = re.sub(r"\s+", "", text)
    for label in _findings(compact, forbidden):
        if label not in found:
            found.append(label)
    return found


def scan(name: str, text: str, parsed: Any, forbidden: list[str]) -> list[str]:
    """Scan the raw lines (comments included: they would be committed too), then every
    parsed string (escapes such as ``\\x41`` are decoded there); report each kind of
    finding once per file, at its first place."""
    seen: set[str] = set()
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for label in _findings(line, forbidden):
            if label not in seen:
                seen.add(label)
                problems.append(f"{name}: line {number} contains what looks like {label}.")
    for path, value in _strings(parsed):
        for label in _findings(value, forbidden):
            if label not in seen:
                seen.add(label)
                problems.append(
                    f"{name}: {path or '(top level)'} contains what looks like {label}."
                )
    # A base64 blob wrapped over several lines (as in a PEM or a ConfigMap) hides a
    # needle from the line scan.
    compact = re.sub(r"\s+", "", text)
    if "one of the control plane's own secrets" not in seen and any(
        needle in compact for needle in forbidden
    ):
        problems.append(f"{name}: contains, across lines, one of the control plane's own secrets.")
    return problems


def _strings(doc: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(doc, str):
        yield path, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield here, key
            yield from _strings(value, here)
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            yield from _strings(item, f"{path}[{index}]")
