"""Reading an evidence file (JSON, or the HTML rendering with the JSON embedded) back."""

from __future__ import annotations

import json
import re

_EMBEDDED = re.compile(
    r'<script id="evidence-envelope" type="application/json">(.*?)</script>', re.DOTALL
)


def envelope_from_text(text: str) -> dict:
    """The envelope in a file's text; ValueError when there is none."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return json.loads(stripped)
    found = _EMBEDDED.search(text)
    if found is None:
        raise ValueError("neither JSON nor an evidence page with the embedded pack")
    # json_script escapes <, > and & as \\uXXXX escapes, which json.loads reads back.
    return json.loads(found.group(1))
