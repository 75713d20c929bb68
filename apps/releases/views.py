"""Release pages. Views stay thin: parse the request, call a selector or a service,
render. Domain errors become form errors or messages, never 500s."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Team
from apps.accounts.roles import REVIEWER_ROLES, user_roles
from apps.audit.models import AuditEvent
from apps.core.errors import DomainError, Forbidden, NotFound
from apps.core.live import live_fragment, minute_bucket
from apps.registry.selectors import releasable_versions
from apps.releases import permissions, selectors, services
from apps.releases.forms import (
    DecisionForm,
    PromoteForm,
    ReasonForm,
    ReleaseCreateForm,
    ReleaseFilterForm,
)
from apps.releases.freeze import freeze_status, is_exempt, upcoming
from apps.releases.freeze_text import window_text
from apps.releases.models import (
    Environment,
    FreezeWindow,
    Release,
    ReleaseState,
    Rollout,
    Service,
    ShadowEvaluation,
)
from apps.releases.policy import open_slots_for
from apps.releases.review import approvals_text
from apps.releases.services.freeze import OVERRIDABLE_STATES


def _get_release(pk: int) -> Release:
    return get_object_or_404(selectors.release_detail_queryset(), pk=pk)


def _domain_error_to_message(request, exc: DomainError) -> None:
    if isinstance(exc, Forbidden):
        raise PermissionDenied(exc.message)
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    messages.error(request, exc.message)


@login_required
@require_GET
def release_list(request):
    form = ReleaseFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    releases = selectors.release_list(**{k: v for k, v in filters.items() if v})
    page = Paginator(releases, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "releases/release_list.html",
        {
            "nav": "releases",
            "form": form,
            "page": page,
            "services": Service.objects.order_by("name").values_list("name", flat=True),
            "environments": Environment.objects.order_by("order").values_list("name", flat=True),
            "teams": Team.objects.order_by("slug").values_list("slug", flat=True),
            "can_create": permissions.can_create_release(request.user),
            "query": request.GET.copy(),
        },
    )


@login_required
def release_create(request):
    if not permissions.can_create_release(request.user):
        raise PermissionDenied("Only ML engineers and admins create releases.")
    service_name = request.POST.get("service") or request.GET.get("service") or ""
    services_allowed = selectors.services_released_by(request.user)
    service = services_allowed.filter(name=service_name).first()
    versions = releasable_versions(service.registered_model) if service else None
    if request.method == "POST":
        form = ReleaseCreateForm(request.POST, versions=versions, services=services_allowed)
        if form.is_valid():
            data = form.cleaned_data
            try:
                release, _ = services.release_create(
                    actor=request.user,
                    service=data["service"],
                    environment=data["environment"],
                    model_version=data["model_version"],
                    config_overrides=data["config_overrides"],
                    reason=data["reason"],
                )
            except DomainError as exc:
                if isinstance(exc, Forbidden):
                    raise PermissionDenied(exc.message) from exc
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"Draft release #{release.pk} created. Check the "
                    "changes below, then submit it for approval.",
                )
                return redirect("releases:detail", pk=release.pk)
    else:
        form = ReleaseCreateForm(
            initial={"service": service_name}, versions=versions, services=services_allowed
        )
    template = (
        "releases/_create_form.html"
        if request.headers.get("HX-Request")
        else "releases/release_create.html"
    )
    # Environments releases go into directly, frozen now: said before anyone fills the
    # form in (the full page only; the form fragment re-renders on every change).
    freezes = [
        status
        for status in (
            freeze_status(env) for env in Environment.objects.filter(promotes_from__isnull=True)
        )
        if status.frozen
    ]
    return render(
        request,
        template,
        {"nav": "releases", "form": form, "service": service, "freezes": freezes},
    )


@login_required
@require_GET
def release_detail(request, pk: int):
    release = _get_release(pk)
    panels = _extra_panels(release)
    return render(
        request,
        "releases/release_detail.html",
        {
            "nav": "releases",
            **_drift_context(request.user, release),
            **_status_context(request, release),
            "extra_panels": panels,
            "review": selectors.release_review(release, panels=panels),
            "snapshots": [a for a in release.approvals.all() if a.evidence],
        },
    )


def release_status_version(pk: int) -> tuple:
    """What the status block shows changes when: the release moves or gets a new status
    word (audited transitions, approvals, or the rollout's status message), a freeze of
    its environment or of the ones it promotes to starts or ends, or a minute passes (soak
    gate and "until" texts). A poll with the same key is a 304 (apps/core/live.py)."""
    row = (
        Release.objects.filter(pk=pk)
        .select_related("environment")
        .only("state", "status_message", "environment")
        .first()
    )
    if row is None:
        return ("missing",)
    environments = [row.environment, *Environment.objects.filter(promotes_from=row.environment)]
    freezes = tuple(
        (status.environment, status.reasons, status.until_text)
        for status in (freeze_status(env) for env in environments)
    )
    newest_audit = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    # A running shadow evaluation's figures change at every poll without an audit row.
    shadow = (
        ShadowEvaluation.objects.filter(release_id=pk)
        .order_by("-run")
        .values_list("updated_at", flat=True)
        .first()
    )
    return (row.state, row.status_message, newest_audit, freezes, minute_bucket(), shadow)


@login_required
@require_GET
@live_fragment(release_status_version)
def release_status(request, pk: int):
    """The live parts of the release page (state, progress, actions, soak gate, approvals),
    polled by htmx while something can change by itself, so the page follows the release
    without a reload. Only the cheap parts: no panels, no git."""
    release = _get_release(pk)
    return render(request, "releases/_release_live.html", _status_context(request, release))


def _status_context(request, release: Release) -> dict:
    user = request.user
    progress = selectors.release_policy_progress(release)
    decided = any(a.approver_id == user.pk for a in release.approvals.all())
    is_pending = release.state == ReleaseState.PENDING_APPROVAL
    can_decide = (
        is_pending
        and permissions.can_review(user, release)
        and not permissions.is_requester(user, release)
        and not permissions.trainer_blocked(user, release)
        and not decided
    )
    open_roles = (
        open_slots_for(user_roles=permissions.review_roles(user, release), progress=progress)
        if can_decide
        else []
    )
    promotion_targets = []
    can_promote = permissions.can_promote(user, release.service)
    can_break_freeze = permissions.can_break_freeze(user, release.service)
    if release.state == ReleaseState.LIVE and (can_promote or can_break_freeze):
        for env in Environment.objects.filter(promotes_from=release.environment):
            frozen = freeze_status(env)
            # On-call sees a promotion form only to break glass through a freeze.
            if not can_promote and not frozen.frozen:
                continue
            promotion_targets.append(
                (
                    env,
                    selectors.soak_gate(source=release, target=env),
                    selectors.standing_promotion(source=release, target=env),
                    frozen,
                )
            )
    # This release's own environment, while it has not started deploying: refused on
    # submit, held at the commit (apps/releases/services/freeze.py).
    own_freeze = None
    if release.state in OVERRIDABLE_STATES and not is_exempt(release):
        own_freeze = freeze_status(release.environment)
    soak = None
    if release.promoted_from_id:
        soak = selectors.soak_gate(
            source=release.promoted_from,
            target=release.environment,
            now=release.submitted_at or release.created_at,
        )
    moving = release.state in (ReleaseState.APPROVED, ReleaseState.DEPLOYING)
    rollout = _rollout_context(user, release)
    shadow = _shadow_context(user, release)
    soaking = any(not gate.passed and not standing for _, gate, standing, _ in promotion_targets)
    frozen = any(f.frozen for *_, f in promotion_targets) or bool(own_freeze and own_freeze.frozen)
    return {
        "release": release,
        "progress": progress,
        "approvals_text": approvals_text(progress),
        "open_roles": open_roles,
        "can_decide": can_decide and bool(open_roles),
        "decided": decided,
        "can_submit": release.state == ReleaseState.DRAFT
        and permissions.can_submit_or_cancel(user, release),
        "can_cancel": release.state
        in (ReleaseState.DRAFT, ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED)
        and permissions.can_submit_or_cancel(user, release),
        "promotion_targets": promotion_targets,
        "can_promote": can_promote,
        "can_break_freeze": can_break_freeze,
        "own_freeze": own_freeze,
        "can_override_freeze": bool(
            own_freeze
            and own_freeze.frozen
            and can_break_freeze
            and not release.freeze_override_reason
        ),
        "text_max_length": settings.RELEASE_TEXT_MAX_LENGTH,
        "soak": soak,
        "moving": moving,
        **rollout,
        "shadow": shadow,
        # Poll while the release moves, while approvals come in, while a soak gate is
        # still closed, and while a freeze holds it or its promotion: each of those
        # changes without anyone touching this page.
        # A page offering a promotion polls too, so a freeze that starts shows at once
        # (unchanged polls are a 304: the status view is a live fragment).
        "poll": moving
        or is_pending
        or soaking
        or frozen
        or bool(promotion_targets)
        or bool(shadow and shadow["active"]),
    }


def _rollout_context(user, release: Release) -> dict:
    """The plan, each step's verdict with its numbers, and the buttons this person may
    use (pause/resume: ML engineers; abort and promote now: on-call; lift the hold:
    either), refreshed with the status block while the release moves."""
    if not release.is_progressive:
        return {"rollout": None}
    rollout = Rollout.objects.filter(release=release).prefetch_related("steps").first()
    steps = list(rollout.steps.all()) if rollout is not None else []
    for step in steps:
        step.checks = (step.analysis or {}).get("checks", [])
    active = rollout is not None and rollout.state in ("running", "paused")
    engineer = permissions.can_promote(user, release.service)
    on_call = permissions.can_rollback(user, release.service)
    return {
        "rollout": rollout,
        "rollout_plan": release.rollout_plan,
        "rollout_steps": steps,
        "rollout_can_pause": active and rollout.state == "running" and engineer,
        "rollout_can_resume": active and rollout.state == "paused" and engineer,
        "rollout_can_abort": active and on_call,
        "rollout_can_promote": active and on_call,
        "rollout_can_lift": rollout is not None
        and rollout.state == "held"
        and (engineer or on_call),
    }


def _shadow_context(user, release: Release) -> dict | None:
    """The shadow evaluation section: shown where the environment's policy is not off,
    for a release waiting for approval or one that has an evaluation on record."""
    from apps.releases.services.shadow_policy import shadow_policy
    from apps.releases.shadow_report import evaluation_report

    latest = (
        ShadowEvaluation.objects.filter(release=release)
        .select_related("started_by", "stopped_by")
        .order_by("-run")
        .first()
    )
    policy = shadow_policy(release)
    waiting = release.state == ReleaseState.PENDING_APPROVAL
    if latest is None and (policy == "off" or not waiting):
        return None
    # The judged run reviewers weigh stays on the page while a newer one runs.
    shown = latest
    if latest is not None and latest.judged_at is None and not latest.is_active:
        shown = (
            ShadowEvaluation.objects.filter(release=release, judged_at__isnull=False)
            .select_related("started_by", "stopped_by")
            .order_by("-run")
            .first()
        ) or latest
    active = latest is not None and latest.is_active
    engineer = permissions.can_promote(user, release.service)
    unavailable = services.shadow_unavailable(release) if waiting else None
    return {
        "policy": policy,
        "report": evaluation_report(shown) if shown is not None else None,
        "active": active,
        "unavailable": unavailable,
        "gate": services.shadow_approval_refusal(release) if waiting else None,
        "can_start": waiting and engineer and not active and not unavailable,
        "can_stop": engineer and active and latest.state != "ending",
    }


_SHADOW_ACTIONS = {
    "start": (
        "Shadow evaluation started: the mirror is committed within seconds.",
        lambda r, u, why: services.shadow_evaluation_start(release=r, actor=u, reason=why),
    ),
    "stop": (
        "Shadow evaluation stopping: the live release's own files go back within seconds.",
        lambda r, u, why: services.shadow_evaluation_stop(release=r, actor=u, reason=why),
    ),
}


@login_required
@require_POST
def release_shadow_action(request, pk: int, action: str):
    """The shadow evaluation's buttons; the services check who may do what."""
    release = _get_release(pk)
    if action not in _SHADOW_ACTIONS:
        raise Http404("No such shadow evaluation action.")
    if not permissions.can_promote(request.user):
        raise PermissionDenied("Only ML engineers and admins start or stop a shadow evaluation.")
    done, act = _SHADOW_ACTIONS[action]
    return _act_with_reason(request, pk, lambda why: act(release, request.user, why), done)


_ROLLOUT_ACTIONS = {
    "pause": ("paused", lambda r, u, why: services.rollout_pause(rollout=r, actor=u, reason=why)),
    "resume": ("resumed", lambda r, u, why: services.rollout_resume(rollout=r, actor=u)),
    "abort": (
        "aborting: the stable release goes back to 100% at the next poll",
        lambda r, u, why: services.rollout_abort(rollout=r, actor=u, reason=why),
    ),
    "promote": (
        "promoting now: the candidate goes to 100% at the next poll",
        lambda r, u, why: services.rollout_promote_now(rollout=r, actor=u, reason=why),
    ),
    "lift-hold": (
        "hold lifted",
        lambda r, u, why: services.rollout_lift_hold(rollout=r, actor=u, reason=why),
    ),
}


@login_required
@require_POST
def release_rollout_action(request, pk: int, action: str):
    """The rollout panel's buttons; the services check who may do what."""
    release = _get_release(pk)
    if action not in _ROLLOUT_ACTIONS:
        raise Http404("No such rollout action.")
    if not permissions.can_steer_rollout(request.user, action):
        raise PermissionDenied(f"Your role does not allow this rollout action ({action}).")
    rollout = Rollout.objects.filter(release=release).first()
    if rollout is None:
        messages.error(request, f"Release #{pk} has no rollout under way.")
        return redirect("releases:detail", pk=pk)
    done, act = _ROLLOUT_ACTIONS[action]
    return _act_with_reason(
        request, pk, lambda why: act(rollout, request.user, why), f"Rollout {done}."
    )


def _act_with_reason(request, pk: int, act, done: str):
    """A release page button that takes an optional reason: run ``act(reason)``, then
    back to the release page with what happened (or why it did not)."""
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        act(reason)
    except DomainError as exc:
        _domain_error_to_message(request, exc)
        return redirect("releases:detail", pk=pk)
    messages.success(request, done)
    return redirect("releases:detail", pk=pk)


def _drift_context(user, release: Release) -> dict:
    """An unapproved change in the live release's folder, and whether this person may
    restore the approved files (shown only on the live release's page)."""
    drift = selectors.target_drift(release) if release.state == ReleaseState.LIVE else None
    if drift is None:
        return {"drift": None}
    return {
        "drift": drift,
        "can_restore": permissions.can_rollback(user, release.service),
        "restore_in_flight": selectors.rollback_in_flight(release),
    }


def _extra_panels(release: Release) -> list:
    """Panels other apps contribute to the release page (model card, metrics, diff)."""
    from apps.releases.panels import release_panels

    return release_panels(release)


@login_required
@require_GET
def release_diff(request, pk: int):
    """The manifest diff for the release page (fetched by htmx after the page loads)."""
    release = _get_release(pk)
    comparison = selectors.release_changes(release)
    return render(request, "releases/_diff.html", {"release": release, "comparison": comparison})


@login_required
@require_POST
def release_submit(request, pk: int):
    release = _get_release(pk)
    try:
        services.release_submit(actor=request.user, release=release)
    except DomainError as exc:
        _domain_error_to_message(request, exc)
    else:
        release.refresh_from_db()
        messages.success(
            request, f"Release #{release.pk} submitted: {release.get_state_display().lower()}."
        )
    return redirect("releases:detail", pk=pk)


@login_required
@require_POST
def release_decide(request, pk: int):
    release = _get_release(pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("releases:detail", pk=pk)
    data = form.cleaned_data
    try:
        if data["decision"] == "approve":
            services.release_approve(
                actor=request.user,
                release=release,
                role=data["role"] or None,
                comment=data["comment"],
                digest=data["digest"],
            )
            messages.success(request, f"You approved release #{pk}.")
        else:
            services.release_reject(
                actor=request.user,
                release=release,
                role=data["role"] or None,
                comment=data["comment"],
            )
            messages.success(request, f"You rejected release #{pk}.")
    except DomainError as exc:
        _domain_error_to_message(request, exc)
    return redirect("releases:detail", pk=pk)


@login_required
@require_POST
def release_cancel(request, pk: int):
    release = _get_release(pk)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.release_cancel(actor=request.user, release=release, reason=reason)
    except DomainError as exc:
        _domain_error_to_message(request, exc)
    else:
        messages.success(request, f"Release #{pk} cancelled.")
    return redirect("releases:detail", pk=pk)


@login_required
@require_POST
def release_promote(request, pk: int):
    release = _get_release(pk)
    form = PromoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the environment to promote to.")
        return redirect("releases:detail", pk=pk)
    try:
        promotion, _ = services.release_promote(
            actor=request.user,
            source=release,
            environment=form.cleaned_data["environment"],
            reason=form.cleaned_data["reason"],
            break_glass=form.cleaned_data["break_glass"],
        )
    except DomainError as exc:
        _domain_error_to_message(request, exc)
        return redirect("releases:detail", pk=pk)
    messages.success(
        request,
        f"Promotion requested: release #{promotion.pk} waits for approval "
        f"in {promotion.environment.name}.",
    )
    return redirect("releases:detail", pk=promotion.pk)


@login_required
@require_POST
def release_freeze_override(request, pk: int):
    """Break glass: on-call or an admin lets a release already asked for through the
    freeze of its environment, with a reason (audited)."""
    release = _get_release(pk)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.release_freeze_override(actor=request.user, release=release, reason=reason)
    except DomainError as exc:
        _domain_error_to_message(request, exc)
    else:
        messages.success(
            request,
            f"Release #{release.pk} goes through the freeze of {release.environment.name}; "
            "your reason is in the audit log.",
        )
    return redirect("releases:detail", pk=pk)


@login_required
@require_POST
def release_restore(request, pk: int):
    """One click (plus one confirmation): commit the live release's approved files again
    over an unapproved change in its folder. Two clicks, two tabs or two people make one
    restore; the others are told which one is under way."""
    release = _get_release(pk)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        restore = services.release_restore_approved(
            live=release,
            reason=reason,
            actor=request.user,
            expected_revision=request.POST.get("expected_revision", "")[:64],
        )
    except DomainError as exc:
        _domain_error_to_message(request, exc)
        return redirect("releases:detail", pk=pk)
    messages.success(
        request,
        f"Restore #{restore.pk} is under way: the approved files of release #{pk} are "
        "committed again.",
    )
    return redirect("releases:detail", pk=restore.pk)


@login_required
@require_GET
def inbox(request):
    waiting = selectors.inbox_for(request.user)
    return render(
        request,
        "releases/inbox.html",
        {
            "nav": "inbox",
            "waiting": waiting,
            "is_reviewer": permissions.can_review(request.user),
        },
    )


@login_required
@require_GET
def service_list(request):
    live = selectors.live_releases_by_target()
    environments = list(selectors.environment_list())
    rows = []
    for service in selectors.service_list():
        rows.append((service, [live.get((service.pk, env.pk)) for env in environments]))
    return render(
        request,
        "releases/service_list.html",
        {
            "nav": "services",
            "rows": rows,
            "environments": environments,
        },
    )


@login_required
@require_GET
def service_detail(request, name: str):
    service = get_object_or_404(Service.objects.select_related("owner_team"), name=name)
    environments = list(selectors.environment_list())
    live = selectors.live_releases_by_target()
    return render(
        request,
        "releases/service_detail.html",
        {
            "nav": "services",
            "service": service,
            "targets": [(env, live.get((service.pk, env.pk))) for env in environments],
            "recent": selectors.release_list(service=service.name)[:20],
            "versions": releasable_versions(service.registered_model)[:10],
            "can_create": permissions.can_create_release(request.user, service),
        },
    )


@login_required
@require_GET
def environment_list(request):
    environments = list(selectors.environment_list())
    windows = list(FreezeWindow.objects.select_related("environment"))
    enabled = [w for w in windows if w.enabled]
    return render(
        request,
        "releases/environment_list.html",
        {
            "nav": "environments",
            "environments": [(env, freeze_status(env, windows=enabled)) for env in environments],
            "windows": [(w, window_text(w), upcoming(w) if w.enabled else []) for w in windows],
        },
    )


@login_required
@require_GET
def landing(request):
    """Where sign-in lands: people whose roles are all reviewer roles go to the releases
    waiting for them; everyone else (engineers, on-call, admins) to the fleet."""
    roles = user_roles(request.user)
    if roles and roles <= REVIEWER_ROLES:
        return redirect("releases:inbox")
    return redirect("dashboards:fleet")
