"""Evidence packs: what they hold, that they verify, and that tampering is named."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.evidence.build import evidence_pack
from apps.evidence.services import evidence_html, evidence_json, evidence_signed
from apps.evidence.signing import sign_pack
from apps.releases import services
from apps.releases.models import Release
from tests import factories


@pytest.fixture
def prod_release(people, environments, service):
    """Live in staging, promoted to prod, approved by pat and carol, then live in prod."""
    staging, _prod = environments
    alice = people["alice"]
    source = factories.live_release(service, staging, 1, requester=alice)
    Release.objects.filter(pk=source.pk).update(live_at=timezone.now() - timedelta(days=2))
    source.refresh_from_db()
    release, _ = services.release_promote(actor=alice, source=source, idempotency_key="ev-1")
    release = services.release_approve(actor=people["pat"], release=release, comment="card ok")
    release = services.release_approve(actor=people["carol"], release=release)
    release.refresh_from_db()
    return factories.release_to_live(release)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_pack_holds_approvals_commit_model_and_audit(prod_release):
    sections = evidence_pack(release=prod_release)["sections"]
    approvals = {a["approver"]: a for a in sections["approvals"]}
    assert set(approvals) == {"pat", "carol"}
    assert approvals["pat"]["comment"] == "card ok"
    assert all(a["approved_digest"] == prod_release.digest for a in approvals.values())
    assert all(a["digest_matches_release"] for a in approvals.values())
    # What the review page showed each approver travels with their decision.
    assert all(a["saw"]["digest"] == prod_release.digest for a in approvals.values())
    assert all(a["saw"]["summary"] for a in approvals.values())
    assert sections["manifests"]["digest"] == prod_release.digest
    assert sections["commits"][0]["sha"] == prod_release.commit_sha
    assert sections["commits"][0]["trailers"]["Approved-By"] == "carol, pat"
    assert sections["model"]["version"] == prod_release.model_version.version
    actions = [e["action"] for e in sections["audit_events"]]
    assert "release.approve" in actions or any(a.startswith("release.") for a in actions)
    assert {row["metric"] for row in sections["slo"]["while_live"]}
    assert sections["gaps"]


def test_an_untampered_pack_verifies_as_json_and_as_html(prod_release, tmp_path, capsys):
    envelope = evidence_signed(release=prod_release)
    call_command("verify_evidence", _write(tmp_path, "p.json", evidence_json(envelope)))
    call_command("verify_evidence", _write(tmp_path, "p.html", evidence_html(envelope)))
    out = capsys.readouterr().out
    assert out.count(f"verified: release {prod_release.pk}") == 2


def test_a_tampered_pack_fails_naming_the_section(prod_release, tmp_path):
    envelope = evidence_signed(release=prod_release)
    envelope["pack"]["sections"]["approvals"][0]["approver"] = "mallory"
    path = _write(tmp_path, "p.json", json.dumps(envelope))
    with pytest.raises(CommandError, match=r"NOT VERIFIED: .*section 'approvals' was changed"):
        call_command("verify_evidence", path)


def test_a_tampered_header_or_html_copy_fails(prod_release, tmp_path):
    envelope = evidence_signed(release=prod_release)
    envelope["pack"]["release_id"] = prod_release.pk + 1
    with pytest.raises(CommandError, match=r"header .* was changed"):
        call_command("verify_evidence", _write(tmp_path, "h.json", json.dumps(envelope)))
    page = evidence_html(evidence_signed(release=prod_release)).replace("card ok", "card bad")
    with pytest.raises(CommandError, match="section 'approvals' was changed"):
        call_command("verify_evidence", _write(tmp_path, "p.html", page))


def test_a_pack_signed_with_another_key_fails(prod_release, tmp_path):
    other = Ed25519PrivateKey.generate()
    envelope = sign_pack(evidence_pack(release=prod_release), key=other)
    path = _write(tmp_path, "p.json", json.dumps(envelope))
    with pytest.raises(CommandError, match="signed with another key"):
        call_command("verify_evidence", path)
    # ... and passes for whoever trusts that other key.
    public = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    call_command("verify_evidence", path, public_key=_write(tmp_path, "k.pem", public.decode()))


def test_a_missing_key_is_an_error_not_a_throwaway_key(prod_release, settings):
    settings.EVIDENCE_SIGNING_KEY = ""
    settings.DEMO_MODE = False
    from apps.evidence.signing import EvidenceKeyError

    with pytest.raises(EvidenceKeyError, match="EVIDENCE_SIGNING_KEY"):
        evidence_signed(release=prod_release)


def test_export_writes_every_pack_in_the_range(prod_release, tmp_path, capsys):
    out = tmp_path / "audit" / "packs.zip"
    today = timezone.now().date()
    call_command(
        "export_evidence",
        since=str(today - timedelta(days=1)),
        until=str(today + timedelta(days=1)),
        out=out,
    )
    names = zipfile.ZipFile(out).namelist()
    count = Release.objects.count()
    assert len(names) == 2 * count and f"release-{prod_release.pk}-{prod_release.uid}.json" in names
    assert f"{count} evidence packs written" in capsys.readouterr().out
    empty = tmp_path / "none.zip"
    call_command("export_evidence", since="2001-01-01", until="2001-01-02", out=empty)
    assert zipfile.ZipFile(empty).namelist() == []


def test_download_by_requester_is_verifiable_and_audited(prod_release, people, tmp_path):
    client = Client()
    client.force_login(people["alice"])
    url = reverse("evidence:download", args=[prod_release.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    call_command("verify_evidence", _write(tmp_path, "d.json", response.content.decode()))
    html = client.get(url, {"format": "html"})
    assert html.status_code == 200 and b"Evidence pack: release" in html.content
    assert (
        AuditEvent.objects.filter(
            action="evidence.download", target_id=str(prod_release.pk), actor_label="alice"
        ).count()
        == 2
    )


def test_download_is_refused_to_others_and_the_link_follows(prod_release, people):
    url = reverse("evidence:download", args=[prod_release.pk])
    detail = reverse("releases:detail", args=[prod_release.pk])
    for name, status, link in [("pat", 403, False), ("otto", 403, False), ("carol", 200, True)]:
        client = Client()
        client.force_login(people[name])
        assert client.get(url).status_code == status, name
        assert (url in client.get(detail).content.decode()) is link, name
