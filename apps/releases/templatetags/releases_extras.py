from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()

# One HTML shape per kind of diff line; the line itself is always escaped by format_html.
# (format_html instead of escape + mark_safe: same output, and nothing for bandit's
# B308/B703 to flag, see tests/hardening/test_security_gates.py.)
_SHAPES = (
    (("+++", "---"), "<strong>{}</strong>"),
    (("@@",), '<span class="hunk">{}</span>'),
    (("+",), '<span class="add">{}</span>'),
    (("-",), '<span class="del">{}</span>'),
)


@register.filter
def diff_lines(diff: str) -> str:
    """Colour a unified diff line by line; every line is HTML-escaped."""
    out = []
    for line in diff.splitlines():
        shape = next((s for prefixes, s in _SHAPES if line.startswith(prefixes)), "{}")
        out.append((format_html(shape, line),))
    return format_html_join("\n", "{}", out)
