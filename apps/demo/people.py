"""The demo's people: one per role, all with the same password (a local demo only)."""

DEMO_PASSWORD = "slipway-demo"  # noqa: S105 - printed on screen; local demo only
PEOPLE = [
    ("alice", "ml-engineer", "ML engineer: creates releases, requests promotion"),
    ("pat", "product-reviewer", "product reviewer: approves prod releases"),
    ("carol", "compliance-reviewer", "compliance reviewer: approves prod releases"),
    ("otto", "oncall", "on call: watches dashboards, rolls back"),
    ("ada", "admin", "admin: sets up services, environments and policies"),
]


def sign_in_lines() -> list[str]:
    return [f"{username:<6} {what}" for username, _, what in PEOPLE]


# Accounts for machines: no password (they sign in with an API token), a role each.
# `ci-bot` is the user of the README's CI example (`create_api_token ci-bot`).
SERVICE_ACCOUNTS = [("ci-bot", "ml-engineer", "CI pipeline: creates and submits releases")]
