"""Signal freezes: while an SLO breach or a drift alert is active in an environment
reached by promotion, promotions into it are refused "until the alert clears"; the
auto-rollback guard's rollback still goes out (rollbacks are never frozen). The breach
comes from real polls of the demo simulator, as in test_guard.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import Conflict
from apps.metrics.models import GuardDecision, GuardOutcome, SloState
from apps.metrics.services import metrics_poll
from apps.releases import services
from apps.releases.freeze import freeze_status
from apps.releases.models import Environment
from tests import factories

pytestmark = pytest.mark.django_db

REGRESSION = {"demo.latency_multiplier": "2.5"}
POLL = timedelta(seconds=30)


@pytest.fixture(autouse=True)
def demo(settings):
    settings.METRICS_BACKEND = "demo"


def _promoted_prod(envs):
    """Make prod the environment staging promotes to, watched by the guard."""
    Environment.objects.filter(pk=envs["prod"].pk).update(
        promotes_from=envs["staging"], auto_rollback=True, bake_minutes=30, min_soak_minutes=0
    )
    envs["prod"].refresh_from_db()
    return envs["prod"]


def test_a_breach_freezes_promotions_until_it_clears_but_not_the_guard_s_rollback(
    envs, make_live, alice
):
    make_live("churn-model", "prod", version=1)
    make_live("churn-model", "prod", version=2, tags=REGRESSION)
    source = factories.backdate_live(make_live("churn-model", "staging", version=3))
    prod = _promoted_prod(envs)
    assert not freeze_status(prod).frozen

    start = timezone.now()
    for i in range(3):
        metrics_poll(now=start + POLL * i)

    status = freeze_status(prod)
    assert status.frozen and status.by_signal and status.calendar_until is None
    assert status.until_text == "the SLO breach clears"
    assert any(r.startswith("SLO breach: churn-model p95 latency") for r in status.reasons)
    # The guard rolled back during the breach, and its rollback is not held.
    decision = GuardDecision.objects.get()
    assert decision.outcome == GuardOutcome.ROLLED_BACK
    assert services.release_deploy_claim(release=decision.rollback) is True
    # A promotion into prod is refused while the breach lasts, saying so.
    with pytest.raises(Conflict) as refused:
        services.release_promote(actor=alice, source=source, reason="ship v3")
    assert "prod is frozen until the SLO breach clears: SLO breach: churn-model" in (
        refused.value.message
    )
    # An environment that opts out of signal freezes takes the promotion.
    Environment.objects.filter(pk=prod.pk).update(freeze_on_alerts=False)
    source.environment.refresh_from_db()
    promotion, created = services.release_promote(actor=alice, source=source, reason="ship v3")
    assert created and promotion.environment_id == prod.pk  # (no approval rules here)


def test_a_drift_alert_is_named_as_such_and_staging_is_not_frozen_by_signals(envs, make_live):
    live = make_live("churn-model", "staging", version=1)
    prod = _promoted_prod(envs)
    for env in (envs["staging"], prod):
        SloState.objects.create(
            service=live.service,
            environment=env,
            metric="drift_psi",
            threshold=0.25,
            last_value=0.41,
            in_breach=True,
            breach_started_at=timezone.now() - timedelta(minutes=5),
        )
    [reason] = freeze_status(prod).reasons
    assert reason.startswith("Drift alert: churn-model drift (PSI)")
    assert reason.endswith("(until the drift alert clears)")
    assert freeze_status(prod).until_text == "the drift alert clears"
    # Staging takes releases directly: a fix goes forward there even during an alert.
    assert not freeze_status(envs["staging"]).frozen
