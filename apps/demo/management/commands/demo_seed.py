"""Seed the embedded demo: two teams and their people, staging and prod, two services serving
real scikit-learn models registered in a local MLflow store, a local bare GitOps
repository, version 1 of each service live in both environments, and a weekend change
freeze window on prod.

Idempotent: running it again changes nothing that exists. Everything goes through the
same service functions and tasks' code as production, so the audit log tells the story.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.accounts.roles import Role
from apps.accounts.services import role_grant_add, roles_ensure_groups, team_create, user_set_roles
from apps.audit.services import audit_record, audited_atomic
from apps.demo.gitops_repo import ensure_bare_repository
from apps.demo.people import DEMO_PASSWORD, PEOPLE, SERVICE_ACCOUNTS, TEAMS
from apps.registry.models import ModelVersion
from apps.releases import services
from apps.releases.models import ApprovalRule, Environment, Release, ReleaseState, Service

# MLflow tags the simulator plays (apps/metrics/sources/demo.py, apps/gitops/demo_cluster.py),
# set once when the store is created. churn-model v3 answers slowly: the regression to roll
# back in the README's story. fraud-model v2 and v3 fail their rollout, so a user can see
# what a failed sync and a model that cannot load look like without writing to MLflow.
DEMO_TAGS = [
    ("churn-model", "3", "demo.latency_multiplier", "2.5"),
    # v4 answers as fast as v2 but its scores shift (PSI 0.24 against the training
    # baseline: inside the 0.25 SLO, so staging lets it through; against v2 on the same
    # canary traffic, over the analysis's 0.2): the canary in prod aborts it at 10%.
    ("churn-model", "4", "demo.drift_psi", "0.24"),
    ("fraud-model", "2", "demo.fail", "sync"),
    ("fraud-model", "3", "demo.fail", "load"),
]
SERVICES = {
    "churn-model": {
        "description": "Predicts which subscribers are about to cancel.",
        "owner_team": "growth-ml",
        "runtime": "fastapi",
        "default_config": {
            "image": "registry.example.com/growth/churn-api@sha256:" + "3" * 64,
            "port": 8080,
            "replicas": {"min": 2, "max": 6},
            "resources": {"cpu": "500m", "memory": "1Gi"},
            "secret_refs": ["churn-model-db"],
        },
        "slo_p95_latency_ms": 250.0,
        "slo_error_rate": 0.02,
        "slo_cost_per_day": 40.0,
        "slo_drift_psi": 0.25,
    },
    "fraud-model": {
        "description": "Scores card payments for fraud before authorisation.",
        "owner_team": "risk-ml",
        # A BentoML image: the demo's MLflow artifacts live on local disk, which a KServe
        # storage initializer could not fetch (Slipway refuses such a render).
        "runtime": "bentoml",
        "default_config": {
            "image": "registry.example.com/risk/fraud-bento@sha256:" + "f" * 64,
            "replicas": {"min": 2, "max": 10},
            "resources": {"cpu": "1", "memory": "2Gi"},
        },
        "slo_p95_latency_ms": 120.0,
        "slo_error_rate": 0.01,
        "slo_cost_per_day": 80.0,
        "slo_drift_psi": 0.25,
    },
}


class Command(BaseCommand):
    help = "Seed the embedded demo (idempotent)."

    def handle(self, *args, **options):
        roles_ensure_groups()
        teams = self._teams()
        people = self._people(teams)
        staging, prod = self._environments()
        self._models()
        self._repository()
        for name, fields in SERVICES.items():
            Service.objects.get_or_create(
                name=name,
                defaults={
                    **fields,
                    "owner_team": teams[fields["owner_team"]],
                    "registered_model": name,
                },
            )
        if self._first_releases(people, staging, prod):
            self._backfill_metrics()
        self._freeze_window(people["ada"], prod)
        self._canary_in_prod(people, prod)
        self._shadow_in_prod(people, prod)
        self.stdout.write(self.style.SUCCESS("demo data ready"))

    def _teams(self):
        teams = {}
        for slug, name in TEAMS:
            teams[slug] = Team.objects.filter(slug=slug).first() or team_create(
                slug=slug, name=name
            )
        return teams

    def _people(self, teams):
        User = get_user_model()
        people = {}
        for username, role, team_slugs, _ in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                if role == Role.ADMIN.value:
                    user.is_staff = user.is_superuser = True
                user.save()
                if team_slugs:
                    for slug in team_slugs:
                        role_grant_add(user=user, role=role, team=teams[slug])
                else:
                    user_set_roles(user=user, roles={role})
            people[username] = user
        for username, role, _ in SERVICE_ACCOUNTS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save()
                user_set_roles(user=user, roles={role})
        return people

    def _environments(self):
        staging, _ = Environment.objects.get_or_create(name="staging", defaults={"order": 1})
        prod, created = Environment.objects.get_or_create(
            name="prod",
            defaults={
                "order": 2,
                "promotes_from": staging,
                "min_soak_minutes": 0,
                "is_production": True,
                "bake_minutes": 15,
            },
        )
        if created:
            ApprovalRule.objects.create(environment=prod, role=Role.PRODUCT_REVIEWER, min_count=1)
            ApprovalRule.objects.create(
                environment=prod, role=Role.COMPLIANCE_REVIEWER, min_count=1
            )
        return staging, prod

    def _models(self):
        from mlflow import MlflowClient

        from apps.registry.demo_seed import seed_demo_models
        from apps.registry.services import registry_sync

        uri = settings.MLFLOW_TRACKING_URI
        store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if store is not None and not store.exists():
            self.stdout.write("training demo models (scikit-learn, data shipped with it)...")
            seed_demo_models(uri, {**dict.fromkeys(SERVICES, 3), "churn-model": 4})
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            for name, version, key, value in DEMO_TAGS:
                client.set_model_version_tag(name, version, key, value)
        result = registry_sync(force=True)
        if not ModelVersion.objects.filter(name__in=SERVICES).exists():
            raise CommandError(f"registry sync found no demo models: {result.summary()}")

    def _repository(self):
        url = settings.GITOPS_REPO_URL
        if not url.startswith("file://"):
            raise CommandError("the demo needs GITOPS_REPO_URL=file://… (set by `make demo`)")
        ensure_bare_repository(Path(url.removeprefix("file://")), settings.GITOPS_BRANCH)

    def _first_releases(self, people, staging, prod):
        """Version 1 of each service live in staging, then promoted and approved in prod,
        driven through the real pipeline (commit, simulated Argo CD, live)."""
        if Release.objects.exists():
            return False
        alice, carol = people["alice"], people["carol"]
        # Each team's product reviewer approves its own service's promotion.
        product = {"churn-model": people["pat"], "fraud-model": people["raj"]}
        for service in Service.objects.filter(name__in=SERVICES):
            mv = ModelVersion.objects.get(name=service.registered_model, version=1)
            release, _ = services.release_create(
                actor=alice,
                service=service,
                environment=staging,
                model_version=mv,
                reason="First release of the demo service.",
            )
            services.release_submit(actor=alice, release=release)
        self._drive_to_live()
        for live in Release.objects.filter(environment=staging, state=ReleaseState.LIVE):
            promotion, _ = services.release_promote(
                actor=alice, source=live, reason="Staging looks good; ship it."
            )
            services.release_approve(
                actor=product[live.service.name], release=promotion, comment="Product OK."
            )
            services.release_approve(
                actor=carol, release=promotion, comment="Model card and bias report reviewed."
            )
        self._drive_to_live()
        # From now on prod asks for a short soak in staging, so the demo can show the gate.
        with audited_atomic():
            Environment.objects.filter(pk=prod.pk).update(min_soak_minutes=2)
            audit_record(
                actor=people["ada"],
                action="environment.change",
                target_type="environment",
                target_id=prod.pk,
                after={"min_soak_minutes": 2},
            )
        return True

    def _freeze_window(self, ada, prod):
        """A weekend change freeze on prod, so people see a freeze window (environments
        page, release pages). Made after the first promotions, so seeding on a weekend
        still works; on a weekend, the README's promotion step meets it."""
        from datetime import date, time, timedelta

        from apps.releases.models import FreezeWindow

        if FreezeWindow.objects.exists():
            return
        with audited_atomic():
            window = FreezeWindow.objects.create(
                environment=prod,
                reason="Weekend change freeze: nobody is around to watch a prod rollout",
                time_zone="Europe/London",
                start_date=date(2026, 1, 3),  # a Saturday
                start_time=time(0, 0),
                recurrence="FREQ=WEEKLY;BYDAY=SA",
                duration=timedelta(days=2, hours=6),  # to Monday 06:00 London time
            )
            audit_record(
                actor=ada,
                action="freezewindow.create",
                target_type="freezewindow",
                target_id=window.pk,
                after={"reason": window.reason, "recurrence": window.recurrence},
            )

    def _canary_in_prod(self, people, prod):
        """churn-model goes to prod by canary steps (10%, then 50%, a minute each), so the
        story can show a good candidate walking to 100% and a drifted one aborted."""
        from apps.releases.models import ServiceEnvironment

        target, _ = ServiceEnvironment.objects.get_or_create(
            service=Service.objects.get(name="churn-model"), environment=prod
        )
        if "rollout" in (target.config_overrides or {}):
            return
        plan = {
            "strategy": "canary",
            "steps": [
                {"weight": 10, "observe": {"minutes": 1}},
                {"weight": 50, "observe": {"minutes": 1}},
            ],
        }
        with audited_atomic():
            target.config_overrides = {**(target.config_overrides or {}), "rollout": plan}
            target.save(update_fields=["config_overrides"])
            audit_record(
                actor=people["ada"],
                action="target.change",
                target_type="service_environment",
                target_id=target.pk,
                after={"rollout": plan},
            )

    def _shadow_in_prod(self, people, prod):
        """Shadow evaluation before approval is optional in prod, with a one-minute window
        at 20% mirrored, so the story can show a report before pat and carol approve.
        Optional, not required: under required, churn-model v4's failing report would
        block its approval, and the story could no longer show the canary abort at 10%."""
        if prod.shadow_evaluation != "off":
            return
        settings_ = {"mirror_percent": 20, "observe": {"minutes": 1}}
        with audited_atomic():
            prod.shadow_evaluation = "optional"
            prod.config_overrides = {
                **(prod.config_overrides or {}),
                "shadow_evaluation": settings_,
            }
            prod.save(update_fields=["shadow_evaluation", "config_overrides"])
            audit_record(
                actor=people["ada"],
                action="environment.change",
                target_type="environment",
                target_id=prod.pk,
                after={"shadow_evaluation": "optional", "config": settings_},
            )

    def _backfill_metrics(self, hours: int = 2, step_seconds: int = 60):
        """Give the dashboards some history: pretend the first releases went live two hours
        ago and replay the simulator's polls over those hours."""
        from datetime import timedelta

        from django.utils import timezone

        from apps.metrics.services import metrics_poll
        from apps.metrics.sources.demo import DemoSource

        start = timezone.now() - timedelta(hours=hours)
        Release.objects.filter(state=ReleaseState.LIVE).update(live_at=start - timedelta(minutes=5))
        source = DemoSource(poll_seconds=step_seconds)
        # Up to and including now: the last replayed poll is fresh, so the pages show no
        # stale-data banner in the seconds before the worker's first real poll.
        for step in range(hours * 3600 // step_seconds + 1):
            metrics_poll(now=start + timedelta(seconds=step * step_seconds), sources=[source])

    def _drive_to_live(self):
        from apps.releases.cluster import cluster_reader, repository_writer
        from apps.releases.deploy import deploy_pending
        from apps.releases.rollout import follow_rollouts

        deploy_pending()
        reader, writer = cluster_reader(), repository_writer()
        try:
            deadline = time.monotonic() + 60
            while Release.objects.filter(state=ReleaseState.DEPLOYING).exists():
                if time.monotonic() > deadline:
                    raise CommandError(
                        "the demo cluster simulator did not report the seed "
                        "releases healthy within 60 s"
                    )
                time.sleep(1)
                follow_rollouts(reader=reader, writer=writer)
        finally:
            writer.close()
