"""GitOps adapters: render manifests, validate them, commit them, follow Argo CD.

Pure adapters with plain values in and out; they know nothing of releases. Modules:
``config`` (serving configuration), ``render`` (one module per runtime family),
``validate``, ``paths``, ``diff``, ``git_writer`` (+ ``locks``), ``argo``.
"""
