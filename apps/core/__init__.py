"""Shared tools every app may import: errors, locks, backoff, failpoints, request ids,
the task queue, the ops registry (readiness checks, metric collectors), the read-only
admin, and the pieces settings name (CSP and body-size middleware, the API error handler,
the JSON log format, the filesystem broker transport). Nothing here imports a domain app
(tests/test_architecture.py checks)."""
