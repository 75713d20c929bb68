"""Template tags for the registry partials, so pages can include them with just a name:

{% load registry_tags %}
{% registry_sync_status service.registered_model as sync %}
"""

from __future__ import annotations

from django import template

from apps.registry import selectors

register = template.Library()


@register.simple_tag
def registry_sync_status(registered_model=None):
    """The SyncStatus of one registered model (a name), or of the whole registry."""
    return selectors.sync_status(registered_model or None)


@register.simple_tag
def registry_alias_updates(release_uid):
    """The MLflow alias updates requested for a release."""
    return list(selectors.alias_updates_for(release_uid))
