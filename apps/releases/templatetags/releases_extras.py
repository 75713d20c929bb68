from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def diff_lines(diff: str) -> str:
    """Colour a unified diff line by line; every line is HTML-escaped first."""
    out = []
    for line in diff.splitlines():
        text = escape(line)
        if line.startswith("+++") or line.startswith("---"):
            out.append(f"<strong>{text}</strong>")
        elif line.startswith("@@"):
            out.append(f'<span class="hunk">{text}</span>')
        elif line.startswith("+"):
            out.append(f'<span class="add">{text}</span>')
        elif line.startswith("-"):
            out.append(f'<span class="del">{text}</span>')
        else:
            out.append(text)
    return mark_safe("\n".join(out))  # noqa: S308 - every piece escaped above
