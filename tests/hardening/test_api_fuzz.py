"""Fuzzing the API with schemathesis against the project's own OpenAPI schema.

The schema is loaded from the WSGI application itself (/api/v1/schema/), so what is
fuzzed is exactly what is served. Every operation gets generated inputs, valid and
invalid, sent with a real bearer token, once as each of four people (admin, ML engineer,
product reviewer, on call) so the role checks are fuzzed too. The checks are
schemathesis' defaults: no 5xx, status codes, content types, headers and bodies as
documented, schema-violating data rejected with a 4xx, schema-valid data not refused,
and the documented bearer authentication enforced.

One deliberate setting, not a suppression: on POST operations a schema-valid body may
still get a 400, because the body names other objects (service, environment, model
version, rollback target) or carries a serving configuration that only the renderer can
judge; no schema can say which exist. Those 400s must still be the documented Error shape
naming the field (response_schema_conformance checks that).

Schemathesis' lazy pytest loader writes ``request.node._nodeid``, which pytest 9 no
longer has; ``_nodeid_shim`` gives it one (reporting only).

Run: ``pytest tests/hardening/test_api_fuzz.py``; EXAMPLES per operation, phase and person.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from apps.releases import services
from controlplane.wsgi import application
from tests import factories

EXAMPLES = 12
PEOPLE = ["ada", "alice", "pat", "otto"]
# Counted by the fixture below and printed at the end; docs/reliability.md quotes it.
SENT: dict[str, int] = {}

CONFIG = {
    "operations": [
        {
            "include-method": "POST",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
                }
            },
        }
    ]
}


@pytest.fixture(autouse=True)
def _nodeid_shim(request):
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture
def in_process_requests():
    """Requests served in this process run inside the test's transaction: keep Django
    from closing that connection at request boundaries (its test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(params=PEOPLE)
def who(request):
    return request.param


@pytest.fixture
def api_schema(in_process_requests, who, people, environments, service, model_versions, token_for):
    staging, prod = environments
    alice = people["alice"]
    factories.live_release(service, staging, 1, requester=alice)
    live = factories.live_release(service, staging, 2, requester=alice)
    draft, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=model_versions[2]
    )
    pending, _ = services.release_create(
        actor=people["bob"], service=service, environment=staging, model_version=model_versions[0]
    )
    ids = [live.pk, draft.pk, pending.pk]
    token = token_for(who)
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json",
        application,
        config=SchemathesisConfig.from_dict(CONFIG),
        headers={"Authorization": f"Bearer {token}"},
    )

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        # Often an id or name that exists, so the actions get past the 404.
        path = context.operation.path
        if "{id}" in path:
            return st.one_of(strategy, st.fixed_dictionaries({"id": st.sampled_from(ids)}))
        if "{name}" in path:
            names = st.sampled_from([service.name, staging.name, prod.name])
            return st.one_of(strategy, st.fixed_dictionaries({"name": names}))
        return strategy

    schema.test_token = token
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_conforms_to_its_schema(case, api_schema):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {api_schema.test_token}"})
    SENT[case.operation.label] = SENT.get(case.operation.label, 0) + 1
    assert response.status_code < 500


def test_every_operation_was_fuzzed():
    """Runs after the fuzz test in this module (pytest keeps file order): if an operation
    disappeared from the schema, or the fuzzer stopped sending requests, say so."""
    if not SENT:
        pytest.skip("run together with test_api_conforms_to_its_schema")
    assert len(SENT) >= 12, SENT
    print(f"\nschemathesis requests per operation: {SENT}; total {sum(SENT.values())}")
