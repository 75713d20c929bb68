"""The chain's head anchored outside the database: what audit_verify can now detect.

Tampering is done as a database superuser would (triggers switched off for the session),
the anchors are real files and real git commits."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.urls import reverse

from apps.audit.anchors import anchor_parse, anchor_text
from apps.audit.models import AuditEvent, ChainStatus
from apps.audit.services import audit_checkpoint, audit_record_standalone
from apps.releases import services as release_services
from apps.releases.deploy import deploy_pending
from tests import factories


def _append(n, actor):
    for i in range(n):
        audit_record_standalone(
            actor=actor, action="test.event", target_type="thing", target_id=i, after={"i": i}
        )


def _tamper(sql, params=()):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def _ids():
    return list(AuditEvent.objects.order_by("id").values_list("id", flat=True))


def test_untampered_chain_is_proven_up_to_the_checkpoint_anchor(alice, anchor_places, capsys):
    _append(4, alice)
    report = audit_checkpoint()
    assert report.intact
    head = _ids()[-1]
    lines = anchor_places.read_text().splitlines()
    assert len(lines) == 1 and f" {head}:" in lines[0]
    audit_checkpoint()  # nothing new: the same head is not anchored twice
    assert len(anchor_places.read_text().splitlines()) == 1
    _append(2, alice)
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert "audit chain intact: " in out
    assert f"proven up to event {head} by the anchor in anchor file {anchor_places} line 1" in out
    assert "2 newer events not yet anchored" in out


def test_deleted_newest_rows_are_detected_naming_the_anchor(alice, anchor_places):
    _append(5, alice)
    audit_checkpoint()
    ids = _ids()
    _tamper("DELETE FROM audit_auditevent WHERE id >= %s", [ids[-3]])
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify")
    message = str(caught.value)
    assert f"event {ids[-1]} named by the anchor in anchor file {anchor_places} line 1" in message
    assert f"the newest row is {ids[-4]}" in message and "rows were deleted" in message


def test_an_emptied_table_is_detected(alice, anchor_places):
    _append(3, alice)
    audit_checkpoint()
    _tamper("DELETE FROM audit_auditevent")
    with pytest.raises(CommandError, match="the table is empty") as caught:
        call_command("audit_verify")
    assert "audit chain shortened" in str(caught.value)
    status = ChainStatus.objects.get(pk=1)
    assert not status.intact and "table is empty" in status.message


def test_an_edited_row_is_detected_and_not_anchored(alice, anchor_places):
    _append(4, alice)
    audit_checkpoint()
    victim = _ids()[1]
    _tamper("UPDATE audit_auditevent SET after = %s WHERE id = %s", ['{"i": 999}', victim])
    _append(1, alice)
    report = audit_checkpoint()
    assert not report.intact and report.broken_event_id == victim
    # The broken chain's new head was not blessed with an anchor.
    assert len(anchor_places.read_text().splitlines()) == 1
    with pytest.raises(CommandError, match=f"broken at event {victim}: content does not match"):
        call_command("audit_verify")


def test_a_forged_anchor_line_is_reported(alice, anchor_places):
    _append(2, alice)
    audit_checkpoint()
    head = AuditEvent.objects.order_by("id").last()
    anchor_places.open("a").write(f"2026-01-01T00:00:00 {head.id + 50}:{head.hash}:{'0' * 32}\n")
    with pytest.raises(CommandError, match=f"event {head.id + 50} in anchor file .* line 2"):
        call_command("audit_verify")


def test_anchor_mac_depends_on_the_chain_key(settings, alice):
    text = anchor_text(event_id=7, event_hash="a" * 64)
    assert anchor_parse(text, source="t").valid_mac
    settings.AUDIT_CHAIN_KEY = "another key"
    assert not anchor_parse(text, source="t").valid_mac


def test_an_anchor_given_on_the_command_line_counts(alice):
    _append(3, alice)
    head = AuditEvent.objects.order_by("id").last()
    given = anchor_text(event_id=head.id, event_hash=head.hash)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [head.id])
    call_command("audit_verify")  # without an anchor, the cut is invisible
    with pytest.raises(CommandError, match=f"event {head.id} named by the anchor in --anchor"):
        call_command("audit_verify", anchor=[given])


def test_gitops_commits_carry_the_anchor_and_verify_reads_them(
    alice, staging, service, gitops_remote, make_git_writer
):
    """A deploy commit's Audit-Anchor trailer, read back from a real git repository."""
    mv = factories.make_model_version(service.registered_model, 1)
    release, _ = release_services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="ship"
    )
    release_services.release_submit(actor=alice, release=release)
    before = AuditEvent.objects.order_by("id").last()
    deploy_pending(writer=make_git_writer(gitops_remote.url))
    message = gitops_remote.messages()[0]
    trailer = message.split("Audit-Anchor: ")[1].split()[0]
    anchored = anchor_parse(trailer, source="t")
    head = AuditEvent.objects.get(pk=anchored.event_id)
    assert anchored.valid_mac and anchored.hash == head.hash and head.id >= before.id
    sha = gitops_remote.git("rev-parse", "refs/heads/main").stdout.decode().strip()

    call_command("audit_verify", git_dir=gitops_remote.path)  # intact
    _tamper("DELETE FROM audit_auditevent WHERE id >= %s", [head.id])
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify", git_dir=gitops_remote.path)
    assert f"event {head.id} named by the anchor in git commit {sha[:12]}" in str(caught.value)


@pytest.mark.postgres
def test_postgres_refuses_truncate(alice):
    from django.db.utils import DatabaseError

    _append(1, alice)
    refused = pytest.raises(DatabaseError, match="append-only: TRUNCATE refused")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        # Without the test suite's opt-in (tests/settings.py), as in production.
        cursor.execute("SET LOCAL slipway.audit_truncate = ''")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.exists()


def test_audit_page_shows_the_stored_verification(client, ada, alice):
    _append(2, alice)
    audit_checkpoint()
    client.force_login(ada)
    page = client.get(reverse("audit:list")).content.decode()
    assert "audit chain intact: " in page and "proven up to event" in page


def test_the_checkpoint_task_runs_on_beat_and_anchors(alice, anchor_places):
    from django.conf import settings

    from apps.audit.tasks import audit_checkpoint_task

    entry = settings.CELERY_BEAT_SCHEDULE["audit.checkpoint"]
    assert entry["task"] == "audit.checkpoint"
    assert entry["schedule"] == float(settings.AUDIT_CHECKPOINT_SECONDS)
    _append(1, alice)
    result = audit_checkpoint_task.apply().get()
    assert result["intact"] and result["proven_to_id"] == _ids()[-1]
    assert anchor_places.exists()
