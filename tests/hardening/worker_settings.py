"""Settings for the processes the hardening tests start (Celery workers, gunicorn).

tests.settings forces an in-memory broker and picks its database by probing; a process
started by a test must instead use the test database that pytest created (its name comes
in SLIPWAY_TEST_DATABASE_NAME) and the real Redis broker the test names
(CELERY_BROKER_URL, DB 14). Everything else (SECRET_KEY, hence the audit chain key,
GITOPS_*, KUBE_*) comes from the environment the test passes, like production.
"""

import os

from tests.settings import *  # noqa: F403

DATABASES["default"]["NAME"] = os.environ["SLIPWAY_TEST_DATABASE_NAME"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
# Only the status poll: it is the safety net that re-sends a lost deploy. The registry
# and metrics polls have their own tests and would only add noise here.
_POLL = float(os.environ.get("STATUS_POLL_SECONDS", "1"))
CELERY_BEAT_SCHEDULE = {
    "releases.follow_rollouts": {
        "task": "releases.follow_rollouts",
        "schedule": _POLL,
        "options": {"expires": _POLL},
    },
}
LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "INFO")  # noqa: F405
LOGGING["handlers"]["console"]["formatter"] = "plain"  # noqa: F405
