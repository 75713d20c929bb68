"""The files committed for a release: its approved manifests plus the metadata file.

Its own module because both the deployer (``deploy``) and the shadow evaluation's
commits (``shadow_commits``: the live release's files, byte for byte) need it.
"""

from __future__ import annotations

from apps.gitops.render import release_metadata_file
from apps.releases.models import Release


def release_commit_files(release: Release) -> dict[str, str]:
    """The files committed for a release: its approved manifests plus the metadata file
    naming who asked and who approved."""
    approvers = sorted(
        a.approver.get_username() for a in release.approvals.all() if a.decision == "approve"
    )
    if release.break_glass:
        approvers.append(f"break-glass:{release.requester_label}")
    name, text = release_metadata_file(
        release_id=str(release.uid),
        kind=release.kind,
        model_name=release.model_version.name,
        model_version=release.model_version.version,
        requested_by=release.requester_label,
        approvers=approvers,
        reason=release.reason,
        rollback_of=str(release.rolled_back_release.uid)
        if release.rolled_back_release_id
        else None,
        team=release.service.owner_team.slug,
    )
    return {**release.rendered_files, name: text}
