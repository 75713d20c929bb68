"""Settings for the test suite.

The suite runs against the real PostgreSQL on 127.0.0.1:5432 when it answers (always in
CI, where REQUIRE_SERVICES=1 turns its absence into an error). Without it, on a laptop,
the suite falls back to SQLite and the PostgreSQL-only tests skip saying why.
Set TEST_DATABASE_URL to point the suite somewhere else.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("SLIPWAY_VAR_DIR", tempfile.mkdtemp(prefix="slipway-test-var-"))

from tests.services import postgres_url

_database_url = os.environ.get("TEST_DATABASE_URL") or postgres_url() or "sqlite://:memory:"
os.environ["DATABASE_URL"] = _database_url

from controlplane.settings import *  # noqa: E402,F403

DEBUG = False
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
ALLOWED_HOSTS = ["*"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_slipway")}  # noqa: F405
    # Django empties tables between transactional tests with TRUNCATE, which the audit
    # table refuses (audit migration 0003) unless the session opts in explicitly.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c slipway.audit_truncate=allow"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
CELERY_BROKER_URL = "memory://"
# A fixed Ed25519 seed (base64) so evidence packs can be signed; for tests only.
EVIDENCE_SIGNING_KEY = "Nl7n66Apix5VCsyEDAHXjjgI4gCCgt6wwVDdb1pmU6Q="
CELERY_TASK_ALWAYS_EAGER = False
# Rate limits far above what any test sends, so no test is throttled by another's
# requests in the shared per-process cache; tests/accounts/test_throttling.py sets its own.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min"},
}
