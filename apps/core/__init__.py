"""Shared tools every app may import: errors, locks, backoff, failpoints, request ids,
the read-only admin. Nothing here imports a domain app (a test checks)."""
