"""Shapes of names and plain strings shared by config parsing, paths and rendering."""

from __future__ import annotations

import re

# RFC 1123 label: namespaces, folder names in the GitOps repository, most object names.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# RFC 1035 label: Service and InferenceService names must also start with a letter.
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# RFC 1123 subdomain: Secret, ServiceAccount and TriggerAuthentication names.
DNS1123_SUBDOMAIN = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Any C0/C1 control character, DEL, and the Unicode line/paragraph separators YAML and
# many terminals treat as line breaks.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_plain(value: str) -> bool:
    """A single line of printable text: no control characters, no line breaks."""
    return not CONTROL_CHARS.search(value)


def fullmatch(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None
