"""The audit log page and its CSV export."""

import csv
import io

from django.test import Client
from django.urls import reverse
from django.utils import timezone

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


def test_change_column_and_targets_read_as_words(ada, alice):
    audit_record_standalone(
        actor=alice,
        action="release.approved",
        target_type="release",
        target_id=7,
        before={"state": "pending_approval"},
        after={"state": "approved"},
    )
    # The alias row's target id is the mirror's database id (3), the version is 1.
    audit_record_standalone(
        system_actor="system:registry",
        action="registry.alias_set",
        target_type="model_version",
        target_id=3,
        before={"alias": "prod", "version": "3"},
        after={"alias": "prod", "version": "1", "model": "churn-model", "attempts": 1},
    )
    audit_record_standalone(
        actor=ada,
        action="user.roles",
        target_type="user",
        target_id=alice.pk,
        before={"roles": ["ml-engineer"]},
        after={"roles": ["ml-engineer", "oncall"]},
    )
    html = _as(ada).get(reverse("audit:list")).content.decode()
    assert "state: pending approval -&gt; approved" in html
    assert "alias prod: v3 -&gt; v1" in html
    assert "churn-model v1" in html and "model_version:3" not in html
    assert "roles: ml-engineer -&gt; ml-engineer, oncall" in html
    assert "{&#x27;" not in html and "{'" not in html  # no Python dict text


def test_service_filter_finds_its_releases_and_model_versions(ada, alice, people, environments):
    from tests import factories

    churn = factories.make_service("churn-model")
    fraud = factories.make_service("fraud-model")
    mine = factories.live_release(churn, environments[0], 1, requester=alice)
    other = factories.live_release(fraud, environments[0], 1, requester=alice)
    audit_record_standalone(
        system_actor="system:registry",
        action="registry.alias_set",
        target_type="model_version",
        target_id=mine.model_version_id,
        after={"alias": "staging", "version": 1, "model": churn.registered_model},
    )
    page = _as(ada).get(reverse("audit:list") + "?service=churn-model").content.decode()
    assert f"release #{mine.pk}<" in page
    assert f"release #{other.pk}<" not in page
    assert "alias staging -&gt; v1" in page
    export = _as(ada).get(reverse("audit:export") + "?service=churn-model")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows and {r["target_id"] for r in rows if r["target_type"] == "release"} == {
        str(mine.pk)
    }


def test_a_page_costs_the_same_queries_whatever_its_size(ada, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.audit.models import ChainStatus
    from apps.audit.views import PAGE_SIZE

    ChainStatus.objects.create(
        pk=1, checked_at=timezone.now(), intact=True, events=1, message="chain intact"
    )
    client = _as(ada)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("audit:list") + "?page=1")
        assert response.status_code == 200
        return len(captured)

    audit_record_standalone(
        actor=alice, action="release.create", target_type="release", target_id=1
    )
    few = queries()
    for i in range(PAGE_SIZE + 5):
        audit_record_standalone(
            actor=alice,
            action="release.live",
            target_type="release",
            target_id=i,
            before={"state": "deploying"},
            after={"state": "live"},
        )
    full = queries()
    assert full == few
    html = client.get(reverse("audit:list") + "?page=2").content.decode()
    assert "page 2 of 2" in html and "chain intact" in html  # status line on every page
    first = client.get(reverse("audit:list")).content.decode()
    assert first.count("<tr>") == PAGE_SIZE + 1  # header row + one page
