"""Validate manifests before anyone approves or commits them.

Checks, all run so that one ``ManifestError`` lists every problem:

- each file is one YAML document of a kind Slipway renders; ``kind: Secret`` is refused
  (secrets are referenced by name, never committed);
- core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an
  unknown field is an error), custom resources against the small JSON schemas in
  ``apps/gitops/schemas/``, and the kustomization lists exactly the object files;
- every object carries the Slipway labels;
- what the API server checks beyond the schemas (``k8s_grammar``): label keys and
  values and annotation keys and total size wherever object or pod metadata sits;
  resource quantities in the real quantity grammar, not negative, whole numbers for
  extended resources, requests within limits; ``oci://`` storage URIs as image
  references with a registered digest;
- with ``require_image_digest``, every container image is pinned ``@sha256:``;
- a secret scanner over the raw text and every parsed string: PEM private keys, cloud
  and forge tokens, credentials in URLs, and any of ``forbidden_values`` (the control
  plane's own secrets), in clear or base64. Findings name the file and place, never the
  secret.
"""

from apps.gitops.validate.manifests import validate_manifests
from apps.gitops.validate.schemas import CORE_KINDS, CUSTOM_SCHEMAS, KUBERNETES_VERSION
from apps.gitops.validate.secrets import MIN_FORBIDDEN_LENGTH, SECRET_PATTERNS, secret_findings

__all__ = [
    "CORE_KINDS",
    "CUSTOM_SCHEMAS",
    "KUBERNETES_VERSION",
    "MIN_FORBIDDEN_LENGTH",
    "SECRET_PATTERNS",
    "secret_findings",
    "validate_manifests",
]
