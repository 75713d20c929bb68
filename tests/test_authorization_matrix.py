"""Every route x every role. Adding a route without adding it here fails
``test_every_route_has_an_entry``: decide who may use it before it ships."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from apps.releases import services
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
    # v3 rolling out over the live v2 by canary steps, claimed by the deployer (its first
    # step pending): what the rollout routes act on.
    rolling, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=factories.make_model_version(service.registered_model, 3),
        rollout={"strategy": "canary", "steps": [{"weight": 10}]},
    )
    services.release_submit(actor=alice, release=rolling)
    services.release_deploy_claim(release=rolling)
    return {
        "rolling": {"pk": rolling.pk},
        "rolling_abort": {"pk": rolling.pk, "action": "abort"},
        "draft": {"pk": draft.pk},
        "pending": {"pk": pending.pk},
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
