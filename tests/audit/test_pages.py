"""The audit log page and its CSV export."""

import csv
import io

from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record_standalone


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def test_filters_narrow_the_list(ada, alice, pat):
    audit_record_standalone(
        actor=alice, action="release.create", target_type="release", target_id=1
    )
    audit_record_standalone(actor=pat, action="release.approve", target_type="release", target_id=1)
    audit_record_standalone(actor=pat, action="release.approve", target_type="release", target_id=2)
    client = _as(ada)
    by_actor = client.get(reverse("audit:list") + "?actor=pat").content.decode()
    assert by_actor.count("<code>release.approve</code>") == 2
    assert "<code>release.create</code>" not in by_actor
    by_target = client.get(reverse("audit:list") + "?target=release:2").content.decode()
    assert by_target.count("<code>release.approve</code>") == 1


def test_csv_export_is_complete_neutralises_formulas_and_is_itself_audited(ada, alice):
    audit_record_standalone(
        actor=alice,
        action="release.create",
        target_type="release",
        target_id='=HYPERLINK("http://evil")',
        after={"reason": "x"},
    )
    response = _as(ada).get(reverse("audit:export"))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    created = next(r for r in rows if r["action"] == "release.create")
    assert created["actor"] == "alice" and created["after"] == '{"reason": "x"}'
    # A spreadsheet would evaluate a cell starting with "="; the export makes it text.
    assert created["target_id"] == '\'=HYPERLINK("http://evil")'
    assert len(created["hash"]) == 64
    assert AuditEvent.objects.filter(action="audit.export", actor=ada).count() == 1


def test_only_admins_and_compliance_read_the_log(people):
    for name, status in [("ada", 200), ("carol", 200), ("alice", 403), ("otto", 403)]:
        assert _as(people[name]).get(reverse("audit:list")).status_code == status
