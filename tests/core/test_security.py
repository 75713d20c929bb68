"""The Content-Security-Policy (apps/core/security.py).

- the middleware sets the policy on every response, leaves a view's own policy alone,
  and can report instead of enforce;
- the templates contain nothing the policy blocks: no inline <script> (JSON data blocks
  excepted), no on*= handlers, no javascript: URLs;
- in a real browser (Debian's Chromium through Playwright), a page built like the
  service dashboard (htmx, plotly.js, static/js/dashboards.js, a figure as JSON, inline
  style attributes) draws its chart under the policy with no violation reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.test import RequestFactory

from apps.core.security import ContentSecurityPolicyMiddleware, build_policy
from tests.services import need_executable

ROOT = Path(__file__).resolve().parents[2]
HEADER = "Content-Security-Policy"


def run_middleware(response: HttpResponse) -> HttpResponse:
    return ContentSecurityPolicyMiddleware(lambda request: response)(RequestFactory().get("/"))


def test_every_response_gets_the_policy(settings):
    settings.CSP_REPORT_ONLY = False
    response = run_middleware(HttpResponse("page"))
    policy = response[HEADER]
    assert policy == build_policy()
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in policy
    assert "unsafe-inline" not in directives["script-src"]


def test_a_views_own_policy_is_kept(settings):
    own = HttpResponse("swagger")
    own[HEADER] = "default-src 'self'; script-src 'self' 'unsafe-inline'"
    assert run_middleware(own)[HEADER] == own[HEADER]


def test_report_only_and_a_custom_policy(settings):
    settings.CSP_REPORT_ONLY = True
    settings.CSP_REPORT_URI = "/csp-report"
    settings.CSP_POLICY = {"default-src": ["'self'"], "style-src": ["'self'"]}
    response = run_middleware(HttpResponse("page"))
    assert HEADER not in response
    assert response[f"{HEADER}-Report-Only"] == (
        "default-src 'self'; style-src 'self'; report-uri /csp-report"
    )


@pytest.mark.parametrize(
    "policy",
    [{"script-src; img-src": ["*"]}, {"script-src": ["'self'; img-src *"]}, {"": ["'self'"]}],
)
def test_a_policy_cannot_smuggle_directives(policy):
    with pytest.raises(ValueError):
        build_policy(policy)


_INLINE_SCRIPT = re.compile(
    r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I
)
_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def test_templates_have_nothing_the_policy_blocks():
    """script-src 'self' blocks inline scripts, on*= handlers and javascript: URLs.
    (Inline style="" attributes are allowed: style-src has 'unsafe-inline'.)"""
    problems = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        name = template.relative_to(ROOT)
        problems += [f"{name}: inline {m.group(0)}" for m in _INLINE_SCRIPT.finditer(text)]
        problems += [f"{name}: handler {m.group(0).strip()}" for m in _HANDLER.finditer(text)]
        if "javascript:" in text.lower():
            problems.append(f"{name}: javascript: URL")
        if re.search(r"\bhx-on[:-]", text):
            problems.append(f"{name}: hx-on (htmx evaluates it as code)")
    assert not problems, "\n".join(problems)


# --- in a browser ---------------------------------------------------------------------------


def _figure_json() -> str:
    """A figure shaped like the dashboard's: date axis, lines, an SLO line, a marker."""
    import plotly.graph_objects as go
    import plotly.io

    figure = go.Figure()
    times = [f"2026-01-01T00:{m:02d}:00" for m in range(30)]
    figure.add_trace(go.Scatter(x=times, y=[100 + m % 7 for m in range(30)], mode="lines"))
    figure.update_layout(
        title={"text": "p95 latency (ms)"},
        height=280,
        xaxis={"type": "date"},
        shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 105, "y1": 105}],
        annotations=[{"xref": "x", "x": times[10], "yref": "paper", "y": 1, "text": "v2"}],
        template="plotly_white",
    )
    return plotly.io.to_json(figure, validate=False, pretty=False)


def _page() -> str:
    from django.utils.html import json_script

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CSP check</title>
<link rel="stylesheet" href="/static/css/slipway.css">
<script src="/static/vendor/htmx-2.0.8.min.js" defer></script>
<script src="/static/vendor/plotly.min.js" defer></script>
<script src="/static/js/dashboards.js" defer></script>
</head><body>
<div class="actions" style="justify-content: space-between;"><h1>churn-model in prod</h1></div>
<div class="charts"><div class="chart" data-figure="chart-latency"></div>
{json_script(_figure_json(), "chart-latency")}</div>
<form method="post" action="/rollback" data-once><button type="submit">Roll back</button></form>
</body></html>"""


def _in_thread(function):
    import threading

    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="csp-browser")
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the browser check did not finish in 120 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _static_file(url_path: str) -> bytes:
    found = finders.find(url_path.removeprefix("/static/"))
    assert found, f"{url_path} is not a static file"
    return Path(found).read_bytes()


@pytest.mark.browser
def test_the_dashboard_page_works_under_the_policy_in_chromium(settings):
    chromium = need_executable("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    static = "vendor/htmx-2.0.8.min.js"
    if not finders.find(static):  # the vendored htmx moved on: use what base.html loads
        static = re.search(
            r"static '(vendor/htmx[^']+)'", (ROOT / "templates/base.html").read_text()
        ).group(1)
    page_html = _page().replace("vendor/htmx-2.0.8.min.js", static)
    policy = build_policy()
    types = {".js": "text/javascript", ".css": "text/css"}

    def serve(route):
        path = route.request.url.removeprefix("http://slipway.test")
        if path == "/dashboard":
            route.fulfill(
                status=200,
                body=page_html,
                headers={"Content-Type": "text/html; charset=utf-8", HEADER: policy},
            )
        elif path.startswith("/static/"):
            route.fulfill(
                status=200,
                body=_static_file(path),
                headers={"Content-Type": types[Path(path).suffix]},
            )
        else:
            route.fulfill(status=404, body="")

    def drive() -> tuple[list, list, int]:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                messages: list[str] = []
                page.on("console", lambda message: messages.append(message.text))
                page.add_init_script(
                    "window.__violations = [];"
                    "document.addEventListener('securitypolicyviolation', e =>"
                    " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
                )
                page.route("http://slipway.test/**", serve)
                page.goto("http://slipway.test/dashboard", wait_until="load")
                page.wait_for_selector("[data-figure] .main-svg", timeout=15_000)
                page.hover("[data-figure] .main-svg")
                page.wait_for_selector("[data-figure] .modebar", timeout=5_000)
                traces = page.evaluate(
                    "document.querySelector('[data-figure]')"
                    ".querySelectorAll('.scatterlayer .trace').length"
                )
                csp_messages = [m for m in messages if "Content Security Policy" in m]
                return page.evaluate("window.__violations"), csp_messages, traces
            finally:
                browser.close()

    # Playwright's sync API refuses to run where an asyncio loop is running, as it is
    # in this process once the browser tests' session-wide Playwright has started; a
    # thread of its own has none.
    violations, csp_messages, traces = _in_thread(drive)
    assert violations == [], violations
    assert csp_messages == [], csp_messages
    assert traces == 1
