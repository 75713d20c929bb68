from __future__ import annotations

import pytest
from django.db import connection

from tests import factories

pytest_plugins = [
    # network first: the others import it, and a plugin imported first is not rewritten.
    "tests.fixtures.network",
    "tests.fixtures.broker",
    "tests.fixtures.git",
    "tests.fixtures.kube",
    "tests.fixtures.mlflow",
    "tests.fixtures.prometheus",
    "tests.fixtures.oidc",
]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """apps.core.locks keeps idle lock connections for the life of the process; close
    them before pytest-django drops the test database (open sessions would block it)."""
    from apps.core.locks import close_lock_connections

    yield
    close_lock_connections()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need row locks and real concurrency: skip them (saying
    why) when the suite is on SQLite; under REQUIRE_SERVICES=1 the suite is never on
    SQLite (tests/settings.py fails first)."""
    from django.conf import settings

    for item in items:
        # The hardening tests start real Celery workers and gunicorn on one Redis broker and
        # kill them at crash points: they run in `make test`'s second, serial phase, alone.
        # (Run beside the rest of the suite on the other xdist worker, the crash-point tests
        # timed out waiting for a release to go live in two full runs; alone they pass.)
        if item.nodeid.startswith("tests/hardening/"):
            item.add_marker(pytest.mark.serial)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL on 127.0.0.1:5432 (suite is on SQLite)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def people(db):
    """Every named person, by username."""
    return {name: factories.make_user(name) for name in factories.PEOPLE}


def _person(name: str):
    """A fixture named ``name`` giving that person (roles in tests.factories.PEOPLE)."""

    def person(people):
        return people[name]

    person.__doc__ = f"{name}: {', '.join(sorted(factories.PEOPLE[name]))}."
    return pytest.fixture(person, name=name)


# The people most tests need by name: the ML engineer, the product and compliance
# reviewers, on-call and the admin.
alice = _person("alice")
pat = _person("pat")
carol = _person("carol")
otto = _person("otto")
ada = _person("ada")


@pytest.fixture
def environments(db):
    return factories.make_environments()


@pytest.fixture
def staging(environments):
    return environments[0]


@pytest.fixture
def prod(environments):
    return environments[1]


@pytest.fixture
def service(db):
    return factories.make_service()


@pytest.fixture
def model_versions(service):
    return [factories.make_model_version(service.registered_model, v) for v in (1, 2, 3)]


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"
