from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 2) -> str:
    """0.0123 -> '1.23%'."""
    if value is None or value == "":
        return ""
    return f"{float(value) * 100:.{int(digits)}f}%"
