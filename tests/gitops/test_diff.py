"""The diff reviewers read before approving."""

from __future__ import annotations

from apps.gitops.diff import structured_changes, unified_diff


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


# --- structured_changes: the sentence per object reviewers read above the raw diff ---

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: churn-model
  labels:
    slipway.io/release: {uid}
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
      - name: model
        image: registry.example.com/churn@sha256:{digest}
        env:
{env}
"""


def _deployment(*, replicas=2, uid="0b4c9f0e-8d1a-4c1e-9a55-3c7d1e2f4a6b", digest="a" * 64, env=()):
    items = (f"        - name: {k}\n          value: {v!r}" for k, v in env)
    lines = "\n".join(items) or "          []"
    return _DEPLOYMENT.format(replicas=replicas, uid=uid, digest=digest, env=lines)


def test_structured_changes_say_replicas_image_and_env_in_words():
    current = {"deployment.yaml": _deployment(replicas=2, env=[("MODEL_URI", "file:///x/y")])}
    proposed = {
        "deployment.yaml": _deployment(
            replicas=3,
            uid="7d0e1c52-11aa-4b0c-8f6e-2a9b3c4d5e6f",
            env=[("MODEL_URI", "file:///x/z"), ("LOG_LEVEL", "debug")],
        )
    }

    [change] = structured_changes(current, proposed)

    assert (change.kind, change.name, change.status) == ("Deployment", "churn-model", "changed")
    assert "replicas 2 -> 3" in change.details
    assert "container image unchanged" in change.details
    assert "env LOG_LEVEL added" in change.details
    assert "env MODEL_URI changed" in change.details
    assert change.sentence.startswith("Deployment churn-model: ")
    # Identifiers and paths are said to change, never spelled out.
    assert "file://" not in change.sentence
    assert "0b4c9f0e" not in change.sentence and "7d0e1c52" not in change.sentence
    # Labels and annotations change with every release: one phrase, at the end.
    assert change.details[-1] == "labels and annotations updated"
    assert not any("slipway.io" in d for d in change.details)


def test_structured_changes_image_change_objects_added_and_removed():
    current = {
        "deployment.yaml": _deployment(),
        "hpa.yaml": "kind: HorizontalPodAutoscaler\nmetadata: {name: churn-model}\n",
    }
    proposed = {
        "deployment.yaml": _deployment(digest="b" * 64),
        "pdb.yaml": "kind: PodDisruptionBudget\nmetadata: {name: churn-model}\n",
    }

    changes = {(c.kind, c.status): c for c in structured_changes(current, proposed)}

    assert "container image changed" in changes[("Deployment", "changed")].details
    assert changes[("HorizontalPodAutoscaler", "removed")].sentence == (
        "HorizontalPodAutoscaler churn-model: removed"
    )
    assert changes[("PodDisruptionBudget", "added")].sentence == (
        "PodDisruptionBudget churn-model: added"
    )


def test_structured_changes_nothing_changes_and_not_yaml():
    same = {"deployment.yaml": _deployment()}
    assert structured_changes(same, same) == []
    # Reformatting only (same parsed objects) is no change either.
    assert (
        structured_changes(
            {"a.yaml": "kind: X\nmetadata: {name: a}\n"},
            {"a.yaml": "kind: X\nmetadata:\n  name: a\n"},
        )
        == []
    )
    [change] = structured_changes({"notes.txt": "a: [\n"}, {"notes.txt": "b: [\n"})
    assert (change.kind, change.name, change.details) == ("File", "notes.txt", ("content changed",))
