"""The audit app's background tasks, by the names they are registered under in ``tasks.py``.

Never rename one: the name is the contract with messages already in the broker
(``apps.core.queue`` explains the check that catches a drift).
"""

from __future__ import annotations

from apps.core.queue import declare

# Sent by Celery beat (controlplane settings), declared here so the name is checked too.
CHECKPOINT = declare("audit.checkpoint")
