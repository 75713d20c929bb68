"""Slipway's own error pages, and refused requests logged as one line."""

from __future__ import annotations

import logging

from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from apps.core.logging import ClientErrorWithoutTraceback


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def test_unknown_address_shows_our_404_page(alice):
    response = _as(alice).get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Not found</h1>" in html and "Back to Slipway" in html
    assert "URLconf" not in html  # never Django's debug page


def test_500_page_needs_neither_database_nor_request_context():
    # No database fixture: any query here would raise (pytest-django blocks it).
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "slipway.css" in html


def test_a_refused_request_is_one_warning_line_without_traceback(alice, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = _as(alice).get(reverse("audit:list"))
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    assert records[0].exc_info is None and "Forbidden" in records[0].getMessage()


def test_server_errors_keep_their_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    for status, kept in ((403, False), (404, False), (500, True)):
        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "x", (), exc_info)
        record.status_code = status
        assert ClientErrorWithoutTraceback().filter(record)
        assert (record.exc_info is not None) == kept
