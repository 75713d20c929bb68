"""Where a model server can fetch a model from, by runtime."""

from __future__ import annotations

import re

from apps.gitops.runtimes import Runtime

# What a default KServe v0.20 install can fetch: the storage initializer's ClusterStorage-
# Container formats (gs, s3, hdfs, webhdfs, hf, https incl. Azure blob), PVCs mounted by
# the webhook, and OCI model cars. Plain http is refused: models travel over TLS.
_STORAGE_SCHEMES = (
    "s3://",
    "gs://",
    "pvc://",
    "https://",
    "hf://",
    "oci://",
    "hdfs://",
    "webhdfs://",
)
# URIs only an MLflow client can resolve (registry or tracking server indirections).
_MLFLOW_SCHEMES = ("models:", "runs:", "mlflow-artifacts:")
# Seldon Core 2 fetches with rclone: "<remote>:<path>" or "<remote>://<path>", the remote
# being a name configured in a storage Secret (s3, gs, or one of your own).
_RCLONE_URI = re.compile(r"(?P<remote>[A-Za-z0-9][A-Za-z0-9_-]{0,62}):(?://)?(?P<path>\S+)")
_OCI_DIGEST = re.compile(r"oci://[^@\s]+@sha256:[a-f0-9]{64}")


def storage_uri_problem(uri: str, runtime: Runtime | None = None) -> str | None:
    """Why the model server's storage initialiser could not fetch ``uri``, or None.

    KServe's storage initializer knows a fixed set of schemes; Seldon Core 2 fetches with
    rclone, whose remote names are configuration (``myremote:bucket/path``).
    """
    seldon = runtime == Runtime.SELDON
    if uri.startswith(_MLFLOW_SCHEMES):
        return (
            f"{uri!r} is an MLflow URI that only an MLflow client can resolve, so it cannot "
            "be fetched by the model server in the cluster. Set storage_uri to where the "
            "artifacts are stored (e.g. s3://bucket/path), shown as the version's artifact "
            "location in MLflow."
        )
    if uri.startswith(("file:", "/")):
        return (
            f"{uri!r} is a path on the machine that logged the model and cannot be fetched "
            "by the model server in the cluster. Log models to an artifact store the cluster "
            "can reach (s3://, gs://, https://)"
            + ("" if seldon else " or copy them to a volume (pvc://<claim>/<path>)")
            + "."
        )
    if seldon:
        if uri.startswith(("oci:", "pvc:", "hf:")):
            # rclone, Seldon's fetcher, has no OCI, PVC or Hugging Face backend: a remote
            # named like that would be looked up in the storage Secret and not be found.
            return (
                f"{uri!r} cannot be fetched by Seldon Core 2 (it downloads models with rclone, "
                "which has no OCI, PVC or Hugging Face backend): copy the artifacts to an "
                "object store and write '<remote>:<path>' (e.g. 's3://bucket/path'), or serve "
                "this model with a KServe runtime."
            )
        if not _RCLONE_URI.fullmatch(uri) or "@" in uri:
            return (
                f"{uri!r} cannot be fetched by Seldon's rclone: write '<remote>:<path>' or "
                "'<remote>://<path>', the remote being s3, gs or one named in a storage "
                "Secret (e.g. 'minio:models/churn/4')."
            )
    elif not uri.startswith(_STORAGE_SCHEMES):
        return (
            f"{uri!r} cannot be fetched by the model server; use one of "
            f"{', '.join(_STORAGE_SCHEMES)}."
        )
    elif uri.startswith("oci://") and not _OCI_DIGEST.fullmatch(uri):
        return (
            "Pin an OCI model car by digest (oci://registry/repo@sha256:<64 hex>): "
            "a tag can be moved to another model after the release was approved."
        )
    if re.match(r"[A-Za-z0-9+.-]+://[^/@]*@", uri):
        return (
            "Do not put credentials in the URI; give the model server a service account "
            "or a storage Secret instead."
        )
    return None
