"""Migration releases 0007/0008: the free-text owner_team becomes a team per distinct text,
and every service keeps its owner."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BEFORE = [("releases", "0006_approval_evidence"), ("accounts", "0001_initial")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_owner_team_text_becomes_teams_and_back():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = _migrate(BEFORE)
        Service = old.get_model("releases", "Service")
        for name, owner in [
            ("churn", "growth-ml"),
            ("upsell", "growth-ml"),
            ("fraud", "Risk ML "),
            ("odd", "__"),
        ]:
            Service.objects.create(name=name, owner_team=owner, registered_model=name)

        new = _migrate([("releases", "0008_service_owner_team_fk_required")])
        Service, Team = new.get_model("releases", "Service"), new.get_model("accounts", "Team")
        teams = {t.slug: t.name for t in Team.objects.all()}
        assert teams == {"growth-ml": "growth-ml", "risk-ml": "Risk ML", "unassigned": "__"}
        owners = dict(Service.objects.values_list("name", "owner_team__slug"))
        assert owners == {
            "churn": "growth-ml",
            "upsell": "growth-ml",
            "fraud": "risk-ml",
            "odd": "unassigned",
        }

        # Backwards: the text comes back as the team's slug.
        back = _migrate(BEFORE)
        OldService = back.get_model("releases", "Service")
        texts = dict(OldService.objects.values_list("name", "owner_team"))
        assert texts == {
            "churn": "growth-ml",
            "upsell": "growth-ml",
            "fraud": "risk-ml",
            "odd": "unassigned",
        }
    finally:
        _migrate(leaves)
