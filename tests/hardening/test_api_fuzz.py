"""Fuzzing the API with schemathesis against the project's own OpenAPI schema.

The schema is loaded from the WSGI application itself (/api/v1/schema/), so what is
fuzzed is exactly what is served. Every operation gets generated inputs, valid and
invalid, sent with a real bearer token; the checks are schemathesis' defaults: no 5xx,
status codes, content types, headers and bodies as documented, bad data rejected with a
4xx, and the documented authentication enforced.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from apps.releases import services
from controlplane.wsgi import application
from tests import factories

EXAMPLES = 25


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


@pytest.fixture
def api_schema(in_process_requests, people, environments, service, model_versions, token_for):
    staging, _prod = environments
    alice = people["alice"]
    live = factories.live_release(service, staging, 1, requester=alice)
    draft, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=model_versions[1]
    )
    ids = [live.pk, draft.pk]
    token = token_for("ada")
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json",
        application,
        headers={"Authorization": f"Bearer {token}"},
    )

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        # Half the time an id or name that exists, so the actions get past the 404.
        known = st.fixed_dictionaries({"id": st.sampled_from(ids)})
        names = st.fixed_dictionaries({"name": st.sampled_from(["churn-model", "staging"])})
        path = context.operation.path
        if "{id}" in path:
            return st.one_of(strategy, known)
        if "{name}" in path:
            return st.one_of(strategy, names)
        return strategy

    schema.test_token = token
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _nodeid_shim(request):
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid



@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, api_schema):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_schema.test_token}"})
