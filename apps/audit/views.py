from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.audit.changes import change_lines, target_label
from apps.audit.export import audit_csv_rows
from apps.audit.selectors import audit_action_names, audit_chain_status, audit_event_list
from apps.audit.services import audit_record_standalone

PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, label="Who")
    action = forms.CharField(
        required=False,
        max_length=64,
        help_text="or its start, e.g. release.",
        widget=forms.TextInput(attrs={"list": "audit-actions"}),
    )
    service = forms.CharField(required=False, max_length=63, help_text="e.g. churn-model")
    target = forms.CharField(required=False, max_length=130, help_text="e.g. release:42")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self) -> dict:
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        return {
            "actor": data.get("actor", ""),
            "action": data.get("action", ""),
            "target": data.get("target", ""),
            "service": data.get("service", ""),
            "since": datetime.combine(data["since"], time.min, tz) if data.get("since") else None,
            "until": datetime.combine(data["until"], time.max, tz) if data.get("until") else None,
        }


def _filtered(request):
    form = AuditFilterForm(request.GET or None)
    events = audit_event_list(**form.filters()) if form.is_valid() else audit_event_list()
    return form, events


@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
@require_GET
def audit_list(request):
    form, events = _filtered(request)
    # One COUNT and one page of rows; the change text and targets are read from each
    # row's own data, so a page costs the same number of queries whatever its size.
    page = Paginator(events.select_related(None), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"event": event, "target": target_label(event), "change": change_lines(event)}
        for event in page
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/audit_list.html",
        {
            "nav": "audit",
            "form": form,
            "page": page,
            "rows": rows,
            "actions": audit_action_names(),
            "query": query.urlencode(),
            # The last stored verification (checkpoint task or audit_verify), not a new
            # walk of the whole chain per page view.
            "chain_status": audit_chain_status(),
        },
    )


@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
@require_GET
def audit_export(request):
    _form, events = _filtered(request)
    # Exports are themselves audited: who took a copy of the log, and which part.
    audit_record_standalone(
        actor=request.user,
        action="audit.export",
        target_type="audit",
        target_id="csv",
        after={"filters": request.GET.dict()},
    )
    response = StreamingHttpResponse(
        audit_csv_rows(events.order_by("id").iterator(chunk_size=2000)), content_type="text/csv"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="slipway-audit-{stamp}.csv"'
    return response
