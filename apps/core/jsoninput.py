"""Checks on JSON and text a person sends, for what PostgreSQL cannot store or Python
cannot parse safely.

PostgreSQL refuses a NUL character in ``text`` and ``\\u0000`` in ``jsonb``, and UTF-8
cannot hold a lone surrogate (``"\\ud800"`` parses in Python, then fails on the way to
the database): each was a 500. ``json.loads`` recurses once per nesting level, so a body
of 100,000 ``[`` raised RecursionError: also a 500. These functions find both before
anything is parsed or saved, so the answer is a 400 naming the problem.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

# Deep enough for any serving configuration (they nest 3-5 levels), shallow enough that
# json.loads and every recursive walk after it stay far from Python's recursion limit.
MAX_JSON_DEPTH = 64

# Characters that matter to the nesting scan; everything else is skipped by the regex
# engine, so the scan is linear in the body and needs no recursion.
_STRUCTURE = re.compile(r'["\\\[\]{}]')
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects in ``text`` nest deeper than ``limit``.

    Brackets inside strings do not count. Malformed JSON gives some answer; the parser
    that runs afterwards refuses it with its own message.
    """
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _STRUCTURE.finditer(text):
        at = match.start()
        if at == escaped_at:
            continue
        char = text[at]
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def unstorable_text(value: str) -> str | None:
    """What in ``value`` PostgreSQL cannot store (a sentence fragment), or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(found.group()):04x}), which UTF-8 cannot encode"


def unstorable_in(data: Any) -> tuple[str, str] | None:
    """(where, what) for the first key or string in parsed JSON that PostgreSQL cannot
    store, or None. ``where`` is a JSON path like ``$.config_overrides.env[0]``.
    Walks with an explicit stack, so depth costs no recursion."""
    stack: list[tuple[str, Any]] = [("$", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = unstorable_text(value)
            if problem:
                return where, problem
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = unstorable_text(key)
                if problem:
                    return f"{where} (a key)", problem
                stack.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


def json_input_problem(text: str) -> str | None:
    """Why JSON text cannot be accepted (a sentence), or None when it can be parsed and
    stored. Text that is simply not JSON is left to the parser's own message."""
    if json_too_deep(text):
        return (
            f"The JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects; flatten it."
        )
    try:
        data = json.loads(text)
    except ValueError:
        return None
    found = unstorable_in(data)
    if found:
        where, what = found
        return f"The JSON holds {what} at {where}; it cannot be stored. Remove it."
    return None


class SafeJSONFormField(forms.JSONField):
    """A form JSON field (the admin's) with the same depth and storability checks as the
    API, so a pasted configuration cannot crash the save with a 500."""

    def to_python(self, value):
        if isinstance(value, str):
            problem = json_input_problem(value)
            if problem:
                raise ValidationError(problem, code="unsafe_json")
        return super().to_python(value)

    def bound_data(self, data, initial):
        # The form shown again with the error re-parses what was typed: keep it as typed
        # (parsing recursed too deep; a lone surrogate cannot be written into the page).
        if isinstance(data, str) and json_input_problem(data):
            return InvalidJSONInput(data)
        return super().bound_data(data, initial)
