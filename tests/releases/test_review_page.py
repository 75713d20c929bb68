"""The release page as a reviewer who is not a Kubernetes person reads it: a summary in
plain words, then the evidence, then the decision; what each approver saw is kept with
their decision and shown after go-live."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.releases import services
from apps.releases.models import Approval, Release, ReleaseState
from apps.releases.policy import Decision, Rule, policy_progress
from apps.releases.review import StagingFigures, build_summary, config_changes
from tests import factories

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
TECHNICAL = re.compile(r'<details class="technical">.*?</details>', re.S)
IMAGE = "registry.example.com/churn-model@sha256:" + "a" * 64

# --- the summary builder (pure) ---------------------------------------------------------


def _progress(*decisions):
    rules = [Rule("compliance-reviewer", 1), Rule("product-reviewer", 1)]
    return policy_progress(rules, [Decision(*d) for d in decisions])


def test_summary_says_in_plain_words_what_changes():
    summary = build_summary(
        to_version="v2",
        from_version="v1",
        environment="prod",
        config_before={"image": IMAGE, "replicas": 2, "port": 8080},
        config_after={"image": IMAGE, "replicas": 3, "port": 8080},
        better=3,
        worse=3,
        compared=True,
        staging=StagingFigures("staging", soaked_minutes=3, required_minutes=2, slo="within"),
        progress=_progress(("pat", "product-reviewer", True)),
    )

    assert summary.text == (
        "Model v1 -> v2; serving configuration: image unchanged, replicas 2 -> 3; "
        "quality: 3 metrics better, 3 worse; staging: within SLOs for 3 min of 2 required; "
        "approvals: 1 of 2 (waiting for compliance-reviewer)"
    )


def test_summary_first_release_nothing_to_compare_over_slo_and_rejected():
    summary = build_summary(
        to_version="v1",
        from_version=None,
        environment="prod",
        config_before=None,
        config_after={"image": IMAGE},
        better=0,
        worse=0,
        compared=False,
        staging=StagingFigures("staging", soaked_minutes=1, required_minutes=60, slo="over"),
        progress=_progress(("carol", "compliance-reviewer", False)),
    )

    assert summary.parts == [
        "Model v1 (first release in prod)",
        "serving configuration: new in prod",
        "quality: nothing to compare with",
        "staging: over an SLO during the soak (1 min of 60 required)",
        "approvals: rejected by carol",
    ]
    no_staging = build_summary(
        to_version="v2",
        from_version="v1",
        environment="staging",
        config_before={"image": IMAGE},
        config_after={"image": IMAGE},
        better=1,
        worse=0,
        compared=True,
        staging=None,
        progress=policy_progress([], []),
    )
    assert no_staging.parts[1:] == [
        "serving configuration: image unchanged, nothing else changes",
        "quality: 1 metric better, 0 worse",
        "soak: none, no earlier environment",
        "approvals: none required",
    ]


def test_config_changes_name_paths_and_ids_only_as_changed():
    before = {
        "image": IMAGE,
        "replicas": {"min": 2, "max": 6},
        "storage_uri": "file:///srv/mlruns/1/models/m-1/artifacts",
        "labels": {"run": "0b4c9f0e-8d1a-4c1e-9a55-3c7d1e2f4a6b"},
    }
    after = {
        "image": IMAGE.replace("a" * 64, "b" * 64),
        "replicas": {"min": 3, "max": 6},
        "storage_uri": "file:///srv/mlruns/1/models/m-2/artifacts",
        "labels": {"run": "7d0e1c52-11aa-4b0c-8f6e-2a9b3c4d5e6f"},
        "env": {"LOG_LEVEL": "debug"},
    }

    phrases = config_changes(before, after)

    assert phrases == [
        "image changed",
        "env LOG_LEVEL added (debug)",
        "labels run changed",
        "replicas min 2 -> 3",
        "storage_uri changed",
    ]
    assert not any("file://" in p or UUID.search(p) for p in phrases)


# --- the page ---------------------------------------------------------------------------


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def _live_in_staging(service, staging, version, *, alice, overrides=None, minutes_ago=120):
    mv = factories.make_model_version(service.registered_model, version)
    release, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=mv,
        config_overrides=overrides,
        reason=f"ship v{version}",
    )
    services.release_submit(actor=alice, release=release)
    release.refresh_from_db()
    live = factories.release_to_live(release)
    Release.objects.filter(pk=live.pk).update(
        live_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    live.refresh_from_db()
    return live


@pytest.fixture
def review(people, environments, service):
    """prod runs v1 (approved by pat and carol); v2, soaked in staging with 3 replicas
    instead of 2, waits for prod approval. v2 is better on 2 metrics, worse on 1."""
    staging, _prod = environments
    alice = people["alice"]
    factories.make_model_version(
        service.registered_model,
        1,
        run_metrics={"accuracy": 0.80, "recall": 0.70, "log_loss": 0.30},
        source="file:///srv/mlflow/artifacts/1/0b4c9f0e8d1a4c1e9a553c7d1e2f4a6b/model",
    )
    factories.make_model_version(
        service.registered_model,
        2,
        run_metrics={"accuracy": 0.85, "recall": 0.75, "log_loss": 0.35},
        source="file:///srv/mlflow/artifacts/1/7d0e1c5211aa4b0c8f6e2a9b3c4d5e6f/model",
    )
    v1 = _live_in_staging(service, staging, 1, alice=alice)
    prod_v1, _ = services.release_promote(actor=alice, source=v1, reason="v1 to prod")
    services.release_approve(actor=people["pat"], release=prod_v1)
    services.release_approve(actor=people["carol"], release=prod_v1)
    prod_v1.refresh_from_db()
    factories.release_to_live(prod_v1)
    v2 = _live_in_staging(
        service, staging, 2, alice=alice, overrides={"replicas": {"min": 3, "max": 6}}
    )
    pending, _ = services.release_promote(actor=alice, source=v2, reason="better recall")
    return pending


def test_summary_states_versions_configuration_quality_soak_and_approvals(review, pat):
    page = _as(pat).get(reverse("releases:detail", args=[review.pk])).content.decode()

    summary = page[
        page.index('id="review-summary"') : page.index(
            "</section>", page.index('id="review-summary"')
        )
    ]
    assert "Model v1 -&gt; v2" in summary
    assert "image unchanged" in summary and "replicas min 2 -&gt; 3" in summary
    assert "Quality: 2 metrics better, 1 worse" in summary
    assert "Staging: no SLO data yet (120 min of 60 required)" in summary
    assert "Approvals: 0 of 2 (waiting for compliance-reviewer, product-reviewer)" in summary


def test_page_reads_summary_then_evidence_then_decision(review, pat):
    page = _as(pat).get(reverse("releases:detail", args=[review.pk])).content.decode()

    summary = page.index('id="review-summary"')
    model_card = page.index("Quality metrics compared with v1")
    changes = page.index("What changes in the GitOps repository")
    decision = page.index('id="decision"')
    staging_evidence = page.index("Soak evidence: #")
    assert summary < model_card < staging_evidence < changes < decision
    assert page.index('name="decision" value="approve"') > changes
    assert 'class="decision-bar"' in page


def test_no_paths_or_ids_outside_the_technical_details(
    review, pat, settings, gitops_remote, tmp_path
):
    settings.GITOPS_REPO_URL = gitops_remote.url
    settings.GITOPS_WORKDIR = tmp_path / "web-clone"
    client = _as(pat)
    page = client.get(reverse("releases:detail", args=[review.pk])).content.decode()
    diff = client.get(reverse("releases:diff", args=[review.pk])).content.decode()

    assert "file://" in page + diff or UUID.search(page + diff)  # they are there...
    for html in (page, diff):
        outside = TECHNICAL.sub("", html)
        assert "file://" not in outside  # ...but only in the technical details
        assert not UUID.search(outside), UUID.search(outside)
    assert '<details class="technical"><summary>Technical details: the raw diff' in diff
    assert "Deployment churn-model" in TECHNICAL.sub("", diff)


def test_structured_change_after_go_live_compares_with_the_previous_release(review, alice):
    staging_v2 = review.promoted_from
    diff = _as(alice).get(reverse("releases:diff", args=[staging_v2.pk])).content.decode()

    outside = TECHNICAL.sub("", diff)
    assert "Compared with release #" in outside
    assert re.search(
        r"HorizontalPodAutoscaler churn-model</strong>: [^<]*minReplicas 2 -&gt; 3", outside
    )
    assert re.search(r"Deployment churn-model</strong>: container image unchanged", outside)
    assert "labels and annotations updated" in outside and "slipway.io" not in outside


def test_each_approver_snapshot_is_kept_and_shown_after_go_live(review, pat, carol, alice):
    services.release_approve(actor=pat, release=review, comment="fine for product")
    snapshot = Approval.objects.get(release=review, approver=pat).evidence
    assert snapshot["digest"] == review.digest
    assert snapshot["compared_with"] == "v1, live in prod"
    assert {m["name"]: m["verdict"] for m in snapshot["metrics"]} == {
        "accuracy": "better",
        "log_loss": "worse",
        "recall": "better",
    }
    assert snapshot["staging"]["environment"] == "staging"
    assert snapshot["staging"]["required_minutes"] == 60
    assert snapshot["summary"][0] == "Model v1 -> v2"
    assert (
        snapshot["summary"][-1]
        == "approvals: 0 of 2 (waiting for compliance-reviewer, product-reviewer)"
    )

    services.release_approve(actor=carol, release=review)
    second = Approval.objects.get(release=review, approver=carol).evidence
    assert second["summary"][-1] == "approvals: 1 of 2 (waiting for compliance-reviewer)"
    review.refresh_from_db()
    factories.release_to_live(review)
    review.refresh_from_db()
    assert review.state == ReleaseState.LIVE

    page = _as(alice).get(reverse("releases:detail", args=[review.pk])).content.decode()
    saw = page[page.index('id="approver-snapshots"') :]
    assert "What the approvers saw" in saw
    assert saw.index("pat as product-reviewer") < saw.index("carol as compliance-reviewer")
    assert "Quality metrics against v1, live in prod" in saw
    assert "(the one deployed)" in saw
    # The model card still compares with the version it replaced, not with nothing.
    assert "no other version is live here" not in page
    assert "Quality metrics compared with v1, live before this release in prod" in page


def test_rejection_keeps_a_snapshot_too(review, carol):
    services.release_reject(actor=carol, release=review, comment="needs a bias review")
    assert Approval.objects.get(release=review, approver=carol).evidence["digest"] == review.digest


def test_status_poll_carries_approvals_and_stops_offering_the_decision(review, pat, carol):
    client = _as(pat)
    status = reverse("releases:status", args=[review.pk])
    before = client.get(status).content.decode()
    assert 'hx-trigger="every 3s"' in before  # pending: approvals may come in
    assert "0 of 1" in before and 'id="approvals"' in before and "hx-swap-oob" in before
    assert 'id="decision"' not in before  # pat may still decide: the bar is left alone

    services.release_approve(actor=carol, release=review)
    after = client.get(status).content.decode()
    assert "by carol" in after and "Approvals: 1 of 2 (waiting for product-reviewer)" in after

    services.release_approve(actor=factories.make_user("paula"), release=review)
    done = client.get(status).content.decode()
    assert '<div id="decision" hidden hx-swap-oob="true"></div>' in done


def test_soak_gate_polls_until_it_opens(people, environments, service):
    staging, _prod = environments
    source = _live_in_staging(service, staging, 1, alice=people["alice"], minutes_ago=59)
    client = _as(people["alice"])
    status = reverse("releases:status", args=[source.pk])

    waiting = client.get(status).content.decode()
    assert 'hx-trigger="every 3s"' in waiting
    assert re.search(r'data-testid="promote-prod"\s+disabled', waiting)
    assert "live for 59 min of the 60 min required" in waiting

    Release.objects.filter(pk=source.pk).update(live_at=timezone.now() - timedelta(minutes=61))
    response = client.get(status)
    ready = response.content.decode()
    assert not re.search(r'data-testid="promote-prod"\s+disabled', ready)
    assert "ready to promote" in ready
    # It keeps polling while it offers the promotion (a freeze of prod may start:
    # docs/freeze-windows.md), but an unchanged block costs a 304, not a render.
    assert 'hx-trigger="every 3s"' in ready and "data-live" in ready
    again = client.get(status, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("username", "lands_on"),
    [
        ("pat", "releases:inbox"),
        ("dual", "releases:inbox"),
        ("alice", "dashboards:fleet"),
        ("otto", "dashboards:fleet"),
        ("ada", "dashboards:fleet"),
        ("nobody", "dashboards:fleet"),
    ],
)
def test_reviewers_land_on_waiting_for_me(db, username, lands_on):
    factories.make_user(username)
    client = Client()
    response = client.post(
        reverse("login"), {"username": username, "password": factories.PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse(lands_on)
