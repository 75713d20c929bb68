"""Readable test data: named people with roles, environments with policies, services.

alice is the ML engineer, pat the product reviewer, carol the compliance reviewer,
otto is on call, ada the admin; bob is a second ML engineer and paula a second product
reviewer; dual holds both reviewer roles (to test "one person, one slot").

And the set-ups tests would otherwise write again and again, one builder each: a
release as a draft, approved, live, or soaked in staging and promoted (pending_promotion);
a release backdated as if it had been live a while (backdate_live); an API client with
a bearer token (bearer_client).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.roles import Role
from apps.registry.models import ModelVersion
from apps.releases.models import ApprovalRule, Environment, Release, Service

PEOPLE = {
    "alice": {Role.ML_ENGINEER},
    "bob": {Role.ML_ENGINEER},
    "pat": {Role.PRODUCT_REVIEWER},
    "paula": {Role.PRODUCT_REVIEWER},
    "carol": {Role.COMPLIANCE_REVIEWER},
    "otto": {Role.ONCALL},
    "ada": {Role.ADMIN},
    "dual": {Role.PRODUCT_REVIEWER, Role.COMPLIANCE_REVIEWER},
    "nobody": set(),
}
PASSWORD = "correct-horse-battery"


def make_user(username: str, roles=None):
    roles = PEOPLE.get(username, set()) if roles is None else roles
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    if created:
        user.set_password(PASSWORD)
        user.save()
    for role in roles:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
        if role == Role.ADMIN:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    return user


def bearer_client(raw_token: str):
    """An API client that sends ``raw_token`` as CI does (``Authorization: Bearer``)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client


def make_environments():
    staging, _ = Environment.objects.get_or_create(name="staging", defaults={"order": 1})
    prod, _ = Environment.objects.get_or_create(
        name="prod",
        defaults={
            "order": 2,
            "promotes_from": staging,
            "min_soak_minutes": 60,
            "is_production": True,
        },
    )
    ApprovalRule.objects.get_or_create(environment=prod, role=Role.PRODUCT_REVIEWER)
    ApprovalRule.objects.get_or_create(environment=prod, role=Role.COMPLIANCE_REVIEWER)
    return staging, prod


DEFAULT_CONFIG = {
    "image": "registry.example.com/churn-model@sha256:" + "a" * 64,
    "port": 8080,
    "replicas": {"min": 2, "max": 6},
    "resources": {"cpu": "500m", "memory": "1Gi"},
}


def make_team(slug: str = "growth-ml", name: str = ""):
    """The team ``slug``, created on first use."""
    team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    return team


def grant(user, role: str, team=None):
    """Give ``user`` ``role`` for ``team`` (a Team or a slug; None: organisation-wide)."""
    from apps.accounts.services import role_grant_add

    if isinstance(team, str):
        team = make_team(team)
    return role_grant_add(user=user, role=role, team=team)


def make_service(name: str = "churn-model", *, registered_model: str | None = None, **fields):
    """A service; ``owner_team`` may be given as a slug (the team is created)."""
    if isinstance(fields.get("owner_team"), str):
        fields["owner_team"] = make_team(fields["owner_team"])
    defaults = {
        "owner_team": make_team("growth-ml"),
        "registered_model": registered_model or name,
        "runtime": "custom",
        "default_config": DEFAULT_CONFIG,
        "slo_p95_latency_ms": 250.0,
        "slo_error_rate": 0.01,
    }
    defaults.update(fields)
    service, _ = Service.objects.get_or_create(name=name, defaults=defaults)
    return service


def make_model_version(name: str = "churn-model", version: int = 1, **fields):
    defaults = {"run_id": f"run{version:04d}", "source": f"models:/{name}/{version}"}
    defaults.update(fields)
    mv, _ = ModelVersion.objects.get_or_create(name=name, version=version, defaults=defaults)
    return mv


def release_to_live(release, *, commit_sha: str | None = None):
    """Drive an approved release through the deploy transitions, as the deploy task and
    the Argo CD status poll would, without a cluster."""
    from apps.releases import services

    sha = commit_sha or (f"{release.pk:x}".rjust(8, "0") * 5)[:40]
    services.release_deploy_claim(release=release)
    services.release_record_commit(release=release, commit_sha=sha)
    return services.release_mark_live(release=release)


def draft_release(service, environment, version: int, *, requester, reason: str = ""):
    """A draft of ``version`` of the service's model, created by ``requester``."""
    from apps.releases import services

    release, _ = services.release_create(
        actor=requester,
        service=service,
        environment=environment,
        model_version=make_model_version(service.registered_model, version),
        reason=reason,
    )
    return release


def approved_release(
    service, environment, version: int, *, requester, approvers=(), reason: str = ""
):
    """Create and submit a release of ``version``, then approve it by each of
    ``approvers`` (staging needs none: submitting approves it). What the deploy task
    picks up next."""
    from apps.releases import services

    release = draft_release(service, environment, version, requester=requester, reason=reason)
    release = services.release_submit(actor=requester, release=release)
    for approver in approvers:
        release = services.release_approve(actor=approver, release=release)
    release.refresh_from_db()
    return release


def live_release(service, environment, version: int, *, requester, approvers=()):
    """Create, submit, approve and take live a release of ``version``."""
    if environment.promotes_from_id is not None:
        raise ValueError("use pending_promotion for environments reached by promotion")
    release = approved_release(
        service,
        environment,
        version,
        requester=requester,
        approvers=approvers,
        reason=f"ship v{version}",
    )
    return release_to_live(release)


# Longer than prod's 60-minute soak gate (make_environments), so promotion is allowed.
SOAKED_MINUTES = 120


def backdate_live(release, *, minutes: float = SOAKED_MINUTES, before: datetime | None = None):
    """Pretend ``release`` went live ``minutes`` before ``before`` (default: now), as if it
    had soaked that long; returns it refreshed."""
    live_at = (before or timezone.now()) - timedelta(minutes=minutes)
    Release.objects.filter(pk=release.pk).update(live_at=live_at)
    release.refresh_from_db()
    return release


def pending_promotion(
    service,
    staging,
    *,
    requester,
    version: int = 1,
    soaked_minutes: float = SOAKED_MINUTES,
    **promote_fields,
):
    """The usual starting point of a prod review: ``version`` live in ``staging``,
    backdated past the soak gate, then promoted by ``requester``. Returns the promotion
    (pending approval); its source is ``promotion.promoted_from``."""
    from apps.releases import services

    source = live_release(service, staging, version, requester=requester)
    backdate_live(source, minutes=soaked_minutes)
    promotion, _ = services.release_promote(actor=requester, source=source, **promote_fields)
    return promotion
