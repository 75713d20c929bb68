"""Fold configuration layers (service defaults, environment, service-in-environment)."""

from __future__ import annotations

from collections.abc import Mapping

from apps.gitops.config.errors import ConfigError


def merge_config(*layers: Mapping | None) -> dict:
    """Deep-merge configuration layers; later layers win.

    Dicts merge key by key; lists and scalars are replaced whole (a list of secret
    names is one decision, not something to splice). A ``None`` value in a later layer
    removes the key, so an environment can drop an inherited setting. Inputs are not
    modified.
    """
    merged: dict = {}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise ConfigError({"(root)": "Each configuration layer must be a mapping of keys."})
        _merge_into(merged, layer)
    return merged


def _merge_into(target: dict, layer: Mapping) -> None:
    for key, value in layer.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            _merge_into(target[key], value)
        elif isinstance(value, list | tuple):
            target[key] = list(value)
        else:
            target[key] = value
