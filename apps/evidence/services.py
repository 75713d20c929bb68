"""Making signed evidence packs: one for a release, or all of a time range for an audit."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path

from django.template.loader import render_to_string

from apps.evidence.build import evidence_pack
from apps.evidence.signing import sign_pack
from apps.releases.models import Release


def evidence_signed(*, release: Release) -> dict:
    """The signed envelope of ``release``'s evidence pack (see ``signing``)."""
    return sign_pack(evidence_pack(release=release))


def evidence_json(envelope: dict) -> str:
    return json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False)


def evidence_html(envelope: dict) -> str:
    """A page a person can read; it embeds the signed JSON, so the HTML file alone can
    be verified too (``verify_evidence`` reads the embedded copy)."""
    return render_to_string(
        "evidence/pack.html",
        {"envelope": envelope, "pack": envelope["pack"], "s": envelope["pack"]["sections"]},
    )


def evidence_export(*, since: datetime, until: datetime, path: Path) -> int:
    """Write every release created in [since, until) as ``<id>-<uid>.json`` and ``.html``
    into a zip at ``path``; return how many releases were written."""
    releases = Release.objects.filter(created_at__gte=since, created_at__lt=until).order_by("pk")
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for release in releases.iterator(chunk_size=100):
            envelope = evidence_signed(release=release)
            stem = f"release-{release.pk}-{release.uid}"
            archive.writestr(f"{stem}.json", evidence_json(envelope))
            archive.writestr(f"{stem}.html", evidence_html(envelope))
            count += 1
    return count
