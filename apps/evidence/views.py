from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from apps.audit.services import audit_record_standalone
from apps.evidence.services import evidence_html, evidence_json, evidence_signed
from apps.evidence.signing import EvidenceKeyError
from apps.releases.models import Release


def may_download(user, release: Release) -> bool:
    """Who reads the audit log, and the person who asked for the release."""
    return user.has_perm("audit.view_auditevent") or release.requested_by_id == user.pk


@login_required
@require_GET
def evidence_download(request, pk: int):
    release = get_object_or_404(Release, pk=pk)
    if not may_download(request.user, release):
        raise PermissionDenied
    try:
        envelope = evidence_signed(release=release)
    except EvidenceKeyError as exc:
        return HttpResponse(str(exc), status=503, content_type="text/plain")
    as_html = request.GET.get("format") == "html"
    # Who took a copy of the evidence is itself evidence.
    audit_record_standalone(
        actor=request.user,
        action="evidence.download",
        target_type="release",
        target_id=release.pk,
        after={"format": "html" if as_html else "json"},
    )
    name = f"slipway-evidence-release-{release.pk}"
    if as_html:
        response = HttpResponse(evidence_html(envelope), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.html"'
    else:
        response = HttpResponse(evidence_json(envelope), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response
