"""Registry actions, by topic: ``sync`` mirrors the MLflow registry into Slipway and
``aliases`` keeps MLflow's aliases in step with what is live.

Every public name is re-exported here, so callers import from ``apps.registry.services``
and do not depend on which module holds what. (A test that patches a module constant
patches it where it is read: in its topic module.)
"""

from __future__ import annotations

from apps.registry.services.aliases import (
    ALIAS_ACTOR,
    ALIAS_ATTEMPT_LEASE_SECONDS,
    ALIAS_MAX_ATTEMPTS,
    ALIAS_RETRY_BASE_SECONDS,
    ALIAS_RETRY_MAX_SECONDS,
    registry_alias_apply,
    registry_alias_assign,
    registry_alias_retry,
)
from apps.registry.services.sync import (
    ARTIFACT_READS_PER_MODEL,
    FORCED_DETAILS_NEWEST,
    SYNC_ACTOR,
    ModelChange,
    SyncResult,
    full_resync_seconds,
    registry_sync,
    registry_version_details_read,
    validate_score_baseline,
)

__all__ = [
    "ALIAS_ACTOR",
    "ALIAS_ATTEMPT_LEASE_SECONDS",
    "ALIAS_MAX_ATTEMPTS",
    "ALIAS_RETRY_BASE_SECONDS",
    "ALIAS_RETRY_MAX_SECONDS",
    "ARTIFACT_READS_PER_MODEL",
    "FORCED_DETAILS_NEWEST",
    "SYNC_ACTOR",
    "ModelChange",
    "SyncResult",
    "full_resync_seconds",
    "registry_alias_apply",
    "registry_alias_assign",
    "registry_alias_retry",
    "registry_sync",
    "registry_version_details_read",
    "validate_score_baseline",
]
