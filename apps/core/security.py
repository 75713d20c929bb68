"""Content-Security-Policy for every response (Django 5.2 has no CSP of its own).

The policy allows what Slipway's pages need and nothing else:

- scripts only from Slipway itself (``script-src 'self'``): no inline ``<script>``, no
  ``eval``. htmx, plotly.js and static/js/*.js are files served by Slipway; figures
  travel as ``<script type="application/json">`` (json_script), which is data, not code.
  plotly.js needs ``'unsafe-eval'`` only for its WebGL traces (scattergl, splom,
  parcoords), which Slipway does not draw.
- styles from Slipway plus inline styles (``'unsafe-inline'`` in ``style-src``): the
  templates use ``style="..."`` attributes, plotly.js adds a ``<style>`` element for its
  mode bar, and htmx one for its request indicator. Inline styles cannot run code; the
  risk they carry (CSS-based data exfiltration) is small next to a broken chart.
- images from Slipway, ``data:`` and ``blob:`` (plotly's "download as PNG" draws through
  them); no plugins (``object-src 'none'``), no framing (``frame-ancestors 'none'``, as
  X_FRAME_OPTIONS = DENY), forms post only to Slipway, ``<base>`` cannot be redirected.
  With single sign-on on, ``form-action`` also names the provider's origin: signing out
  posts to Slipway, which redirects to the provider's end_session_endpoint, and browsers
  apply ``form-action`` to the redirects after a form post too.

Settings (all optional): ``CSP_POLICY`` (a dict of directive -> list of sources replacing
the default), ``CSP_REPORT_ONLY`` (send ``Content-Security-Policy-Report-Only`` instead,
to try a stricter policy without breaking pages) and ``CSP_REPORT_URI``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'", "'unsafe-inline'"),
    "img-src": ("'self'", "data:", "blob:"),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}


def build_policy(policy: Mapping[str, Sequence[str]] | None = None, *, report_uri: str = "") -> str:
    """The header value for ``policy`` (the default when None)."""
    directives = dict(DEFAULT_POLICY if policy is None else policy)
    parts = []
    for directive, sources in directives.items():
        if not directive or any(ch in directive for ch in ";, \t\r\n"):
            raise ValueError(f"{directive!r} is not a CSP directive name.")
        for source in sources:
            if any(ch in source for ch in ";,\r\n"):
                raise ValueError(f"{source!r} is not a CSP source expression.")
        parts.append(" ".join([directive, *sources]))
    if report_uri:
        parts.append(f"report-uri {report_uri}")
    return "; ".join(parts)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def sso_form_action_origins() -> tuple[str, ...]:
    """Origins of the OIDC provider that sign-out redirects to (settings only)."""
    if not getattr(settings, "OIDC_ENABLED", False):
        return ()
    urls = (
        getattr(settings, "OIDC_OP_ISSUER", ""),
        getattr(settings, "OIDC_OP_END_SESSION_ENDPOINT", ""),
    )
    return tuple(dict.fromkeys(o for o in map(_origin, urls) if o))


def _policy() -> Mapping[str, Sequence[str]]:
    policy = getattr(settings, "CSP_POLICY", None)
    if policy is not None:
        return policy
    extra = sso_form_action_origins()
    if not extra:
        return DEFAULT_POLICY
    return {**DEFAULT_POLICY, "form-action": (*DEFAULT_POLICY["form-action"], *extra)}


class ContentSecurityPolicyMiddleware:
    """Adds the policy header to every response that does not already carry one (a view
    may set its own, stricter or looser)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        report_only = getattr(settings, "CSP_REPORT_ONLY", False)
        header = "Content-Security-Policy-Report-Only" if report_only else "Content-Security-Policy"
        if header not in response:
            # Built per response from settings: a handful of string joins, and a settings
            # override (tests, a report-only trial) applies without a restart.
            response[header] = build_policy(
                _policy(), report_uri=getattr(settings, "CSP_REPORT_URI", "")
            )
        return response
