"""Settings for the real Celery workers of the notification crash test: the hardening
workers' settings (the test database, the broker the test names), with the notification
sweep as the only periodic task."""

import os

from tests.hardening.worker_settings import *  # noqa: F403

_SWEEP = float(os.environ.get("NOTIFICATIONS_SWEEP_SECONDS", "1"))
CELERY_BEAT_SCHEDULE = {
    "notifications.sweep": {
        "task": "notifications.sweep",
        "schedule": _SWEEP,
        "options": {"expires": _SWEEP},
    },
}
