"""Release actions, one function per action, in modules by topic. Each one that moves a
release locks its row, checks the source state, writes the new state and its audit event
in one transaction (``_transitions._move``), and schedules side effects (deploys, alias
updates) only after that transaction commits (``apps.releases.queue``).

Import from here (``from apps.releases import services``); the modules are a layout, not
an interface.
"""

from apps.releases.services.approval import release_approve, release_reject
from apps.releases.services.artifacts import release_check_artifacts
from apps.releases.services.create import release_cancel, release_create, release_submit
from apps.releases.services.deployment import (
    release_deploy_claim,
    release_mark_failed,
    release_mark_live,
    release_note_status,
    release_record_commit,
    target_record_status,
)
from apps.releases.services.drift import (
    folder_differences,
    release_restore_approved,
    target_record_drift,
)
from apps.releases.services.freeze import release_freeze_override
from apps.releases.services.progressive import (
    held_rollout,
    rollout_abort,
    rollout_advance,
    rollout_end,
    rollout_lift_hold,
    rollout_note,
    rollout_pause,
    rollout_promote_now,
    rollout_record_commit,
    rollout_record_verdict,
    rollout_resume,
    rollout_steps_of,
)
from apps.releases.services.promotion import release_promote
from apps.releases.services.rollback import (
    release_rollback,
    rollback_candidates,
    rollback_default_target,
    rollback_default_targets,
)
from apps.releases.services.shadow import (
    shadow_decide_end,
    shadow_end_for_target,
    shadow_evaluation_end_without_commit,
    shadow_evaluation_start,
    shadow_evaluation_stop,
    shadow_note,
    shadow_record_commit,
    shadow_record_report,
)
from apps.releases.services.shadow_policy import shadow_approval_refusal, shadow_unavailable

__all__ = [
    "folder_differences",
    "held_rollout",
    "release_approve",
    "release_cancel",
    "release_check_artifacts",
    "release_create",
    "release_deploy_claim",
    "release_freeze_override",
    "release_mark_failed",
    "release_mark_live",
    "release_note_status",
    "release_promote",
    "release_record_commit",
    "release_reject",
    "release_restore_approved",
    "release_rollback",
    "release_submit",
    "rollback_candidates",
    "rollback_default_target",
    "rollback_default_targets",
    "rollout_abort",
    "rollout_advance",
    "rollout_end",
    "rollout_lift_hold",
    "rollout_note",
    "rollout_pause",
    "rollout_promote_now",
    "rollout_record_commit",
    "rollout_record_verdict",
    "rollout_resume",
    "rollout_steps_of",
    "shadow_approval_refusal",
    "shadow_decide_end",
    "shadow_end_for_target",
    "shadow_evaluation_end_without_commit",
    "shadow_evaluation_start",
    "shadow_evaluation_stop",
    "shadow_note",
    "shadow_record_commit",
    "shadow_record_report",
    "shadow_unavailable",
    "target_record_drift",
    "target_record_status",
]
