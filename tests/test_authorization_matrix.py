"""Every route x every role. Adding a route without adding it here fails
``test_every_route_has_an_entry``: decide who may use it before it ships."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from apps.releases import selectors, services
from apps.releases.models import Release, Rollout
from tests import factories

ROLES = ["anon", "alice", "pat", "carol", "otto", "ada", "nobody"]
ALL = {r: None for r in ROLES}


def expect(default, **per_role):
    table = {role: default for role in ROLES}
    table.update(per_role)
    return table


PAGE = expect(200, anon=302)  # any signed-in person reads; anonymous goes to sign in
API_READ = expect(200, anon=401)

# route name -> (method, kwargs key, body, expected status per role)
MATRIX: dict[str, tuple[str, str | None, dict | None, dict]] = {
    "home": ("get", None, None, expect(302)),
    "healthz": ("get", None, None, expect(200)),
    # Probes answer without a session; readyz says 503 here because the test settings
    # configure no git remote. /metrics wants its bearer token, whoever is signed in, and
    # is closed while none is configured (unless METRICS_PUBLIC=1).
    "readyz": ("get", None, None, expect(503)),
    "metrics": ("get", None, None, expect(401)),
    "login": ("get", None, None, expect(200)),
    "logout": ("post", None, None, expect(302)),
    # The admin's password form (the sign-in page when passwords are off); staff already
    # signed in go on to the admin.
    "admin_login": ("get", None, None, expect(200, ada=302)),
    # After SSO: only a person with no role sees it (403, saying why); others move on.
    "accounts:no_role": ("get", None, None, expect(302, nobody=403)),
    # Single sign-on is not configured in the test settings: both are 404.
    "accounts:sso_start": ("get", None, None, expect(404)),
    "oidc_authentication_callback": ("get", None, None, expect(404)),
    "dashboards:fleet": ("get", None, None, PAGE),
    "dashboards:service": ("get", "dash", None, PAGE),
    "dashboards:rollback_progress": ("get", "dash", None, PAGE),
    "dashboards:fleet_live": ("get", None, None, PAGE),
    "dashboards:inbox_live": ("get", None, None, PAGE),
    "dashboards:service_live": ("get", "dash", None, PAGE),
    "dashboards:service_charts": ("get", "dash", None, PAGE),
    "dashboards:rollback": (
        "post",
        "dash",
        {"reason": "p95", "expected_live": "@live_pk"},
        expect(403, anon=302, otto=302, ada=302),
    ),
    "releases:list": ("get", None, None, PAGE),
    "releases:create": ("get", None, None, expect(403, anon=302, alice=200, ada=200)),
    "releases:detail": ("get", "draft", None, PAGE),
    "releases:status": ("get", "draft", None, PAGE),
    "releases:diff": ("get", "draft", None, PAGE),
    "releases:submit": ("post", "draft", None, expect(403, anon=302, alice=302, ada=302)),
    "releases:decide": (
        "post",
        "pending",
        {"decision": "approve", "digest": "@digest", "role": ""},
        expect(403, anon=302, pat=302, carol=302),
    ),
    "releases:cancel": ("post", "draft", None, expect(403, anon=302, alice=302, ada=302)),
    "releases:promote": (
        "post",
        "promotable",
        {"environment": "prod"},
        expect(403, anon=302, alice=302, ada=302),
    ),
    # On-call and admins only; with nothing to restore they are sent back with a message.
    "releases:restore": (
        "post",
        "live",
        {"reason": "unreviewed push"},
        expect(403, anon=302, otto=302, ada=302),
    ),
    # Break glass through a freeze: on-call and admins only.
    "releases:freeze_override": (
        "post",
        "pending",
        {"reason": "INC-1 fix"},
        expect(403, anon=302, otto=302, ada=302),
    ),
    "releases:inbox": ("get", None, None, PAGE),
    # Sends reviewers to their inbox, everyone else to the fleet (anonymous: to sign in).
    "releases:landing": ("get", None, None, expect(302)),
    "releases:services": ("get", None, None, PAGE),
    "releases:service": ("get", "service", None, PAGE),
    "releases:environments": ("get", None, None, PAGE),
    "audit:list": ("get", None, None, expect(403, anon=302, carol=200, ada=200)),
    "audit:export": ("get", None, None, expect(403, anon=302, carol=200, ada=200)),
    # Who reads the audit log, and the release's requester (alice asked for "live").
    "evidence:download": (
        "get",
        "live",
        None,
        expect(403, anon=302, alice=200, carol=200, ada=200),
    ),
    "registry:sync": ("post", "model", None, expect(403, anon=302, alice=302, ada=302)),
    # Each person's own settings: nobody reads or changes another's.
    "notifications:settings": ("get", None, None, PAGE),
    "api-schema": ("get", None, None, API_READ),
    "api-docs": ("get", None, None, API_READ),
    "service-list": ("get", None, None, API_READ),
    "service-detail": ("get", "service", None, API_READ),
    "environment-list": ("get", None, None, API_READ),
    "environment-detail": ("get", "environment", None, API_READ),
    "release-list": ("get", None, None, API_READ),
    "release-detail": ("get", "draft", None, API_READ),
    "release-submit": ("post", "draft", {}, expect(403, anon=401, alice=200, ada=200)),
    "release-approve": ("post", "pending", {}, expect(403, anon=401, pat=200, carol=200)),
    "release-reject": (
        "post",
        "pending",
        {"comment": "no"},
        expect(403, anon=401, pat=200, carol=200),
    ),
    "release-cancel": ("post", "draft", {}, expect(403, anon=401, alice=200, ada=200)),
    "release-promote": ("post", "promotable", {}, expect(403, anon=401, alice=201, ada=201)),
    "release-freeze-override": (
        "post",
        "pending",
        {"reason": "INC-1 fix"},
        expect(403, anon=401, otto=200, ada=200),
    ),
    "release-rollback": (
        "post",
        "live",
        {"reason": "bad"},
        expect(403, anon=401, otto=201, ada=201),
    ),
    # People in the loop of a progressive rollout (the world's "rolling" release is at
    # its first step): ML engineers pause and resume, on-call aborts and promotes now,
    # either lifts a hold (409 here: nothing is held).
    "releases:rollout_action": (
        "post",
        "rolling_abort",
        {"reason": "error spike"},
        expect(403, anon=302, otto=302, ada=302),
    ),
    "release-rollout-pause": ("post", "rolling", {}, expect(403, anon=401, alice=200, ada=200)),
    "release-rollout-resume": ("post", "rolling", {}, expect(403, anon=401, alice=200, ada=200)),
    "release-rollout-abort": (
        "post",
        "rolling",
        {"reason": "bad"},
        expect(403, anon=401, otto=200, ada=200),
    ),
    "release-rollout-promote": (
        "post",
        "rolling",
        {"reason": "verified"},
        expect(403, anon=401, otto=200, ada=200),
    ),
    "release-rollout-lift-hold": (
        "post",
        "rolling",
        {"reason": "fixed"},
        expect(403, anon=401, alice=409, otto=409, ada=409),
    ),
    # Shadow evaluation of a release waiting for approval: ML engineers of the team (and
    # admins). The world's pending promotion has nothing live in prod to mirror: 400
    # saying so once the role is checked; nothing to stop: 409.
    "releases:shadow_action": (
        "post",
        "pending_shadow",
        {"reason": "before review"},
        expect(403, anon=302, alice=302, ada=302),
    ),
    "release-shadow-evaluation-start": (
        "post",
        "pending",
        {},
        expect(403, anon=401, alice=400, ada=400),
    ),
    "release-shadow-evaluation-stop": (
        "post",
        "pending",
        {},
        expect(403, anon=401, alice=409, ada=409),
    ),
    "admin:index": ("get", None, None, expect(302, ada=200)),
}
# The create endpoint shares the list route name; it is checked with POST separately.
API_CREATE = expect(403, anon=401, alice=201, ada=201)


def _named_routes(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            if entry.namespace == "admin":
                yield "admin:index"
                continue
            yield from _named_routes(entry, ns)
        elif isinstance(entry, URLPattern):
            if entry.name:
                yield f"{namespace}{entry.name}"
            else:
                yield f"{namespace}<unnamed {entry.pattern}>"


def test_every_route_has_an_entry():
    missing = sorted(set(_named_routes()) - set(MATRIX))
    assert not missing, f"routes without an authorization entry: {missing}"


@pytest.fixture
def world(people, environments, service):
    staging, _prod = environments
    alice = people["alice"]
    older = factories.live_release(service, staging, 1, requester=alice)
    live = factories.live_release(service, staging, 2, requester=alice)
    assert older.pk != live.pk
    factories.backdate_live(older, minutes=4 * 60)
    factories.backdate_live(live, minutes=3 * 60)
    pending, _ = services.release_promote(actor=alice, source=live, idempotency_key="auth-matrix")
    # A second service live in staging with no promotion open yet, for the promote routes
    # (``live`` already has one: ``pending``).
    other = factories.make_service("fraud-model")
    promotable = factories.live_release(other, staging, 1, requester=alice)
    factories.backdate_live(promotable, minutes=3 * 60)
    draft, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=factories.make_model_version(service.registered_model, 3),
    )
    # v3 rolling out over the live v2 by canary steps, its first step committed: what the
    # rollout routes act on.
    rolling, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=factories.make_model_version(service.registered_model, 3),
        rollout={"strategy": "canary", "steps": [{"weight": 10}]},
    )
    services.release_submit(actor=alice, release=rolling)
    services.release_deploy_claim(release=rolling)
    services.rollout_record_commit(
        rollout=Rollout.objects.get(release=rolling), name="step-1", commit_sha="c" * 40
    )
    return {
        "rolling": {"pk": rolling.pk},
        "rolling_abort": {"pk": rolling.pk, "action": "abort"},
        "draft": {"pk": draft.pk},
        "pending": {"pk": pending.pk},
        "pending_shadow": {"pk": pending.pk, "action": "start"},
        "live": {"pk": live.pk},
        "promotable": {"pk": promotable.pk},
        "service": {"name": service.name},
        "environment": {"name": "staging"},
        "model": {"registered_model": service.registered_model},
        "dash": {"service": service.name, "environment": "staging"},
        "@live_pk": live.pk,
        "@digest": pending.digest,
    }


def _client(role, people, api):
    client = APIClient() if api else Client()
    if role != "anon":
        client.force_login(people[role])
    return client


def _status(route, role, world, people):
    method, key, body, _ = MATRIX[route]
    kwargs = world[key] if key else {}
    if route == "registry:sync":
        kwargs = world["model"]
    url = reverse(route, kwargs=kwargs)
    api = "-" in route and ":" not in route and route not in ("api-schema", "api-docs")
    client = _client(role, people, api)
    body = {
        k: (world[v] if isinstance(v, str) and v.startswith("@") else v)
        for k, v in (body or {}).items()
    }
    if method == "get":
        return client.get(url).status_code
    if api:
        return client.post(url, body, format="json").status_code
    return client.post(url, body).status_code


@pytest.mark.parametrize("route", sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_route_answers_each_role_as_declared(route, role, world, people):
    expected = MATRIX[route][3][role]
    assert _status(route, role, world, people) == expected, f"{route} as {role}"


@pytest.mark.parametrize("role", ROLES)
def test_api_release_create_by_role(role, world, people):
    client = _client(role, people, api=True)
    response = client.post(
        reverse("release-list"),
        {
            "service": "churn-model",
            "environment": "staging",
            "model_version": 3,
            "reason": "matrix",
        },
        format="json",
    )
    assert response.status_code == API_CREATE[role]


# --- team scoping ------------------------------------------------------------------------
# The people above hold their roles organisation-wide (group membership). These hold the
# same roles for one team only: churn-model belongs to growth-ml, fraud-model to risk-ml.
# Same role, other team: refused (403, with the team named), and nothing of the other
# team's is offered to them.
TEAM_PEOPLE = {
    "gina": (Role.ML_ENGINEER, "growth-ml"),
    "rita": (Role.ML_ENGINEER, "risk-ml"),
    "greg": (Role.PRODUCT_REVIEWER, "growth-ml"),
    "raj": (Role.PRODUCT_REVIEWER, "risk-ml"),
    "rosa": (Role.COMPLIANCE_REVIEWER, "risk-ml"),
    "gordon": (Role.ONCALL, "growth-ml"),
    "oscar": (Role.ONCALL, "risk-ml"),
}


@pytest.fixture
def team_people(people):
    scoped = {}
    for name, (role, team) in TEAM_PEOPLE.items():
        scoped[name] = factories.make_user(name, roles=set())
        factories.grant(scoped[name], role, team)
    return {**people, **scoped}


@pytest.fixture
def team_world(team_people, environments, service):
    staging, _prod = environments
    alice = team_people["alice"]
    older = factories.live_release(service, staging, 1, requester=alice)
    factories.backdate_live(older, minutes=4 * 60)
    live = factories.live_release(service, staging, 2, requester=alice)
    factories.backdate_live(live, minutes=3 * 60)
    pending, _ = services.release_promote(actor=alice, source=live)
    fraud = factories.make_service("fraud-model", owner_team="risk-ml")
    fraud_live = factories.live_release(fraud, staging, 1, requester=alice)
    factories.backdate_live(fraud_live, minutes=3 * 60)
    factories.make_model_version(service.registered_model, 3)
    return {"pending": pending, "live": live, "fraud_live": fraud_live, "fraud": fraud}


def _api_as(person, team_people):
    client = APIClient()
    client.force_login(team_people[person])
    return client


def _web_as(person, team_people):
    client = Client()
    client.force_login(team_people[person])
    return client


TEAM_ACTIONS = {
    # action -> {person: expected status}; growth-ml owns every target but fraud_live.
    "approve": {"raj": 403, "rosa": 403, "gina": 403, "greg": 200},
    "reject": {"raj": 403, "rosa": 403, "greg": 200},
    "create": {"rita": 403, "greg": 403, "gina": 201},
    "promote": {"gina": 403, "rita": 201},
    "rollback": {"oscar": 403, "gina": 403, "gordon": 201},
}


def _team_action(action, person, team_world, team_people):
    client = _api_as(person, team_people)
    if action == "approve":
        url = reverse("release-approve", args=[team_world["pending"].pk])
        return client.post(url, {}, format="json")
    if action == "reject":
        url = reverse("release-reject", args=[team_world["pending"].pk])
        return client.post(url, {"comment": "no"}, format="json")
    if action == "create":
        body = {"service": "churn-model", "environment": "staging", "model_version": 3}
        return client.post(reverse("release-list"), body, format="json")
    if action == "promote":
        url = reverse("release-promote", args=[team_world["fraud_live"].pk])
        return client.post(url, {}, format="json")
    url = reverse("release-rollback", args=[team_world["live"].pk])
    return client.post(url, {"reason": "p95"}, format="json")


@pytest.mark.parametrize(
    ("action", "person"), [(a, p) for a, people in TEAM_ACTIONS.items() for p in people]
)
def test_api_actions_are_scoped_to_the_services_team(action, person, team_world, team_people):
    expected = TEAM_ACTIONS[action][person]
    response = _team_action(action, person, team_world, team_people)
    assert response.status_code == expected, response.content
    if expected == 403 and TEAM_PEOPLE[person][0] in _ACTION_ROLES[action]:
        # Holding the role for another team: the refusal names the team to ask about.
        assert "belongs to team" in response.json()["detail"]


_ACTION_ROLES = {
    "approve": {Role.PRODUCT_REVIEWER, Role.COMPLIANCE_REVIEWER},
    "reject": {Role.PRODUCT_REVIEWER, Role.COMPLIANCE_REVIEWER},
    "create": {Role.ML_ENGINEER},
    "promote": {Role.ML_ENGINEER},
    "rollback": {Role.ONCALL},
}


def test_web_actions_are_scoped_to_the_services_team(team_world, team_people):
    pending, live = team_world["pending"], team_world["live"]
    decide = reverse("releases:decide", args=[pending.pk])
    body = {"decision": "approve", "digest": pending.digest, "role": ""}
    refused = _web_as("raj", team_people).post(decide, body)
    assert refused.status_code == 403
    assert "belongs to team growth-ml" in refused.content.decode()
    rollback = reverse("dashboards:rollback", args=["churn-model", "staging"])
    assert (
        _web_as("oscar", team_people)
        .post(rollback, {"reason": "p95", "expected_live": live.pk})
        .status_code
        == 403
    )
    promote = reverse("releases:promote", args=[team_world["fraud_live"].pk])
    assert _web_as("gina", team_people).post(promote, {"environment": "prod"}).status_code == 403
    # The creation form offers only the person's teams' services; posting another's is a
    # form error, not a release.
    create = reverse("releases:create")
    page = _web_as("rita", team_people).get(create).content.decode()
    assert 'value="fraud-model"' in page and 'value="churn-model"' not in page
    before = Release.objects.count()
    posted = _web_as("rita", team_people).post(
        create,
        {"service": "churn-model", "environment": "staging", "model_version": "", "reason": "x"},
    )
    assert posted.status_code == 200 and "Select a valid choice" in posted.content.decode()
    assert Release.objects.count() == before
    assert _web_as("greg", team_people).post(decide, body).status_code == 302
    pending.refresh_from_db()
    assert [a.approver.username for a in pending.approvals.all()] == ["greg"]


def test_other_teams_releases_are_not_offered_to_a_reviewer(team_world, team_people):
    pending = team_world["pending"]
    detail = reverse("releases:detail", args=[pending.pk])
    for person, offered in [("raj", False), ("rosa", False), ("greg", True), ("pat", True)]:
        client = _web_as(person, team_people)
        inbox = client.get(reverse("releases:inbox")).content.decode()
        live_inbox = client.get(reverse("dashboards:inbox_live")).content.decode()
        page = client.get(detail).content.decode()
        marker = f'data-release="{pending.pk}"'
        assert (marker in inbox) is offered, person
        assert (marker in live_inbox) is offered, person
        assert ('name="decision" value="approve"' in page) is offered, person
    # The notifications helper's answer: the growth-ml reviewer and the organisation-wide
    # ones, never the risk-ml reviewers, nor the requester.
    names = [u.username for u in selectors.eligible_reviewers(pending)]
    assert names == ["carol", "dual", "greg", "pat", "paula"]


def test_rollback_is_offered_only_for_the_on_calls_teams(team_world, team_people):
    from apps.dashboards.fleet import fleet_page

    def fleet_rows(**kwargs):
        return fleet_page(per_page=1000, **kwargs).rows

    from apps.releases.permissions import rollback_team_ids

    for person, churn, fraud in [("oscar", False, True), ("gordon", True, False)]:
        rows = fleet_rows(
            with_rollback=True, rollback_team_ids=rollback_team_ids(team_people[person])
        )
        by_service = {(r.service.name, r.environment.name): r.can_rollback for r in rows}
        assert by_service[("churn-model", "staging")] is churn, person
        assert by_service[("fraud-model", "staging")] is fraud, person
    rows = fleet_rows(with_rollback=True, rollback_team_ids=rollback_team_ids(team_people["otto"]))
    assert all(r.can_rollback for r in rows)  # otto is on call organisation-wide
    dashboard = reverse("dashboards:service", args=["churn-model", "staging"])
    assert "rollback-dialog" not in _web_as("oscar", team_people).get(dashboard).content.decode()
    assert "rollback-dialog" in _web_as("gordon", team_people).get(dashboard).content.decode()


def test_no_data_leaks_through_lists_filters_and_exports(team_world, team_people):
    client = _api_as("raj", team_people)
    risk = client.get(reverse("release-list"), {"team": "risk-ml"}).json()
    rows = risk["results"] if isinstance(risk, dict) else risk
    assert {r["service"] for r in rows} == {"fraud-model"}
    unknown = client.get(reverse("release-list"), {"team": "nope"}).json()
    assert (unknown["results"] if isinstance(unknown, dict) else unknown) == []
    assert client.get(reverse("release-list"), {"team": "Not A Team"}).status_code == 400
    page = _web_as("raj", team_people).get(reverse("releases:list"), {"team": "risk-ml"})
    listed = page.content.decode()
    assert f'href="{reverse("releases:detail", args=[team_world["fraud_live"].pk])}"' in listed
    assert f'href="{reverse("releases:detail", args=[team_world["pending"].pk])}"' not in listed
    service = client.get(reverse("service-detail", args=["fraud-model"])).json()
    assert service["owner_team"] == "risk-ml"
    # The audit log and its export are organisation-wide: a team's compliance reviewer
    # does not read other teams' history through them.
    rosa = _web_as("rosa", team_people)
    assert rosa.get(reverse("audit:list")).status_code == 403
    assert rosa.get(reverse("audit:export")).status_code == 403


def test_a_person_in_no_team_is_told_so(team_world, team_people):
    client = _web_as("nobody", team_people)
    inbox = client.get(reverse("releases:inbox"))
    assert inbox.status_code == 200
    assert "You hold no role for any team yet" in inbox.content.decode()
    refused = client.get(reverse("releases:create"))
    assert refused.status_code == 403
    assert "Only ML engineers and admins create releases." in refused.content.decode()
    api = _api_as("nobody", team_people)
    body = {"service": "churn-model", "environment": "staging", "model_version": 3}
    answer = api.post(reverse("release-list"), body, format="json")
    assert answer.status_code == 403
    assert answer.json()["detail"] == "Only ML engineers and admins create releases."
    assert selectors.inbox_for(team_people["nobody"]) == []
