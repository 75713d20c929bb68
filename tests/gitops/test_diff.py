"""The diff reviewers read before approving."""

from __future__ import annotations

from apps.gitops.diff import unified_diff


def test_changed_added_and_removed_files():
    current = {"deployment.yaml": "a: 1\nb: 2\n", "old.yaml": "x: 1\n", "same.yaml": "s\n"}
    proposed = {"deployment.yaml": "a: 1\nb: 3\n", "new.yaml": "y: 1\n", "same.yaml": "s\n"}

    diff = unified_diff(current, proposed, folder="environments/prod/churn")

    assert "--- a/environments/prod/churn/deployment.yaml" in diff
    assert "+++ b/environments/prod/churn/deployment.yaml" in diff
    assert "-b: 2\n+b: 3\n" in diff
    assert "new file\n--- /dev/null\n+++ b/environments/prod/churn/new.yaml\n" in diff
    assert "deleted file\n--- a/environments/prod/churn/old.yaml\n+++ /dev/null\n" in diff
    assert "same.yaml" not in diff
    # Files appear in name order.
    assert diff.index("deployment.yaml") < diff.index("new.yaml") < diff.index("old.yaml")


def test_first_deploy_and_no_change():
    assert unified_diff({}, {"a.yaml": "k: v\n"}, folder="f").count("+k: v") == 1
    assert unified_diff({"a.yaml": "k: v\n"}, {"a.yaml": "k: v\n"}, folder="f") == ""


def test_missing_final_newline_does_not_glue_lines():
    diff = unified_diff({"a.yaml": "k: v"}, {"a.yaml": "k: w\n"}, folder="f")
    assert "-k: v\n+k: w\n" in diff
