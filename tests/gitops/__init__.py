"""Tests for the GitOps adapters (apps/gitops)."""
