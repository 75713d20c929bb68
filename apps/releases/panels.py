"""Panels on the release page contributed by other parts of Slipway.

The release page belongs to this app, but some of what reviewers need there comes from
apps that sit above it (metrics: SLO evidence during soak). Those apps register a panel
provider here from their AppConfig.ready(), so imports keep running one way
(metrics -> releases) and this app never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Panel:
    title: str
    template: str
    context: dict = field(default_factory=dict)
    order: int = 50


PanelProvider = Callable[[object], "Panel | None"]
_providers: list[PanelProvider] = []


def register_panel(provider: PanelProvider) -> PanelProvider:
    if provider not in _providers:
        _providers.append(provider)
    return provider


def release_panels(release) -> list[Panel]:
    panels = [panel for provider in _providers if (panel := provider(release)) is not None]
    return sorted(panels, key=lambda p: p.order)


@register_panel
def model_card_panel(release) -> Panel:
    """The model card: this version's evidence next to the version live in that
    environment, and whether MLflow's alias follows the release."""
    from apps.registry.selectors import model_card
    from apps.releases.selectors import replaced_release

    # The version this release replaces, before and after go-live alike: an auditor
    # reading the page later compares against what the reviewers compared against.
    replaced = replaced_release(release)
    compare_to = replaced.model_version if replaced is not None else None
    when = "live" if release.live_at is None else "live before this release"
    label = f"v{compare_to.version}, {when} in {release.environment.name}" if compare_to else None
    card = model_card(release.model_version, compare_to=compare_to, compare_label=label)
    return Panel(
        title="Model", template="releases/_model_panel.html", context={"card": card}, order=10
    )


@register_panel
def changes_panel(release) -> Panel:
    """What this release changes in the GitOps repository, loaded after the page (it may
    need a git fetch, which must not hold up the page)."""
    return Panel(
        title="What changes in the GitOps repository",
        template="releases/_diff_placeholder.html",
        # After the model card (10) and the service levels (30): reviewers weigh the
        # evidence first, then read what changes in the repository.
        order=40,
    )
