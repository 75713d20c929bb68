"""What the sync and the alias updates share: writing a model's alias map onto its
version rows (MLflow keeps aliases on the registered model; the UI and selectors read them
per version)."""

from __future__ import annotations

from apps.registry.models import ModelVersion


def mirror_alias_map(name: str, aliases: dict[str, int]) -> list[int]:
    """Set each version's ``aliases`` from the model's alias map; return versions changed.

    Rows are locked in primary-key order (the documented lock order).

    Call inside a transaction: the rows it rewrites are locked until the caller commits."""
    holders = {n for n in aliases.values()}
    rows = (
        ModelVersion.objects.select_for_update(no_key=True)
        .filter(name=name)
        .exclude(aliases=[])
        .order_by("pk")
    )
    changed = []
    for row in list(rows) + list(
        ModelVersion.objects.select_for_update(no_key=True)
        .filter(name=name, version__in=holders, aliases=[])
        .order_by("pk")
    ):
        wanted = sorted(a for a, n in aliases.items() if n == row.version)
        if row.aliases != wanted:
            row.aliases = wanted
            row.save(update_fields=["aliases"])
            changed.append(row.version)
    return sorted(set(changed))
