"""Small display filters shared by every app's templates."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """A stored JSON value as people write it (indented, double quotes), not as Python
    prints a dict ({'port': 8080, 'secret_refs': [...]}). Autoescaped by the template."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
