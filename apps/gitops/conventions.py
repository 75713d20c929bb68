"""Names shared by the renderers, the validator and the git writer.

Kept apart from ``render`` so the validator can use them without importing the
renderers (which call the validator).
"""

from __future__ import annotations

import re

KUSTOMIZATION_FILE = "kustomization.yaml"
# Written next to the manifests for people and auditors; not listed in the kustomization
# (Argo CD never applies it) and not part of the digest reviewers approve.
METADATA_FILE = "slipway-release.json"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RELEASE_ID = "slipway.io/release-id"
LABEL_MODEL_VERSION = "slipway.io/model-version"
REQUIRED_LABELS = (
    LABEL_NAME,
    LABEL_INSTANCE,
    LABEL_VERSION,
    LABEL_COMPONENT,
    LABEL_PART_OF,
    LABEL_MANAGED_BY,
    LABEL_RELEASE_ID,
    LABEL_MODEL_VERSION,
)
# What Kubernetes accepts as a label value.
LABEL_VALUE = re.compile(r"(?=.{0,63}\Z)(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
ANNOTATION_MODEL_NAME = "slipway.io/model-name"
ANNOTATION_MODEL_URI = "slipway.io/model-uri"
ANNOTATION_RUNTIME = "slipway.io/runtime"
