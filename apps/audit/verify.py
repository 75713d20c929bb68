"""Verifying the chain against its anchors: edited rows, rows removed from the middle,
and (what the chain alone cannot see) the newest rows or all rows removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from apps.audit.anchors import Anchor
from apps.audit.chain import first_break


@dataclass(frozen=True)
class ChainReport:
    """What a verification found; ``message`` names the row and the anchor involved."""

    intact: bool
    events: int
    message: str
    broken_event_id: int | None = None
    proven_to_id: int | None = None  # the newest row an anchor vouches for
    proven_by: str = ""  # that anchor's source
    unanchored: int = 0  # rows newer than the newest matching anchor

    def as_dict(self) -> dict:
        return asdict(self)


def verify_with_anchors(events: Iterable, anchors: list[Anchor]) -> ChainReport:
    """Walk the rows in id order once, checking links and content, and remember the
    hashes of the rows that anchors name; then hold every anchor against them."""
    wanted = {a.event_id for a in anchors}
    seen: dict[int, str] = {}
    ids: list[int] = []

    def rows():
        for event in events:
            ids.append(event.id)
            if event.id in wanted:
                seen[event.id] = event.hash
            yield event

    broken = first_break(rows())
    count = len(ids)
    if broken is not None:
        return ChainReport(
            intact=False,
            events=count,
            broken_event_id=broken.event_id,
            message=f"audit chain broken at event {broken.event_id}: {broken.reason} "
            f"({count} rows read)",
        )
    for anchor in anchors:
        if not anchor.valid_mac:
            return ChainReport(
                intact=False,
                events=count,
                broken_event_id=anchor.event_id,
                message=f"anchor for event {anchor.event_id} in {anchor.source} has a bad MAC: "
                "forged, or written with another AUDIT_CHAIN_KEY",
            )
    # Newest anchor first: the most rows it can prove missing.
    for anchor in sorted(anchors, key=lambda a: a.event_id, reverse=True):
        if anchor.event_id not in seen:
            last = ids[-1] if ids else None
            where = "the table is empty" if last is None else f"the newest row is {last}"
            return ChainReport(
                intact=False,
                events=count,
                broken_event_id=anchor.event_id,
                message=f"audit chain shortened: event {anchor.event_id} named by the anchor in "
                f"{anchor.source} is missing ({where}; {count} rows read): rows were deleted",
            )
        if seen[anchor.event_id] != anchor.hash:
            return ChainReport(
                intact=False,
                events=count,
                broken_event_id=anchor.event_id,
                message=f"audit chain replaced: event {anchor.event_id} has another hash than "
                f"the anchor in {anchor.source} ({count} rows read)",
            )
    if not anchors:
        return ChainReport(
            intact=True,
            events=count,
            unanchored=count,
            message=f"audit chain intact: {count} events verified; no anchor found, so "
            "deleted newest rows could not be detected",
        )
    newest = max(anchors, key=lambda a: a.event_id)
    unanchored = sum(1 for i in ids if i > newest.event_id)
    return proven_report(events=count, unanchored=unanchored, anchor=newest)


def proven_report(*, events: int, unanchored: int, anchor: Anchor) -> ChainReport:
    """The report of an intact chain whose newest vouched-for row is ``anchor``'s."""
    return ChainReport(
        intact=True,
        events=events,
        proven_to_id=anchor.event_id,
        proven_by=anchor.source,
        unanchored=unanchored,
        message=f"audit chain intact: {events} events verified; proven up to event "
        f"{anchor.event_id} by the anchor in {anchor.source}; {unanchored} newer events "
        "not yet anchored",
    )
