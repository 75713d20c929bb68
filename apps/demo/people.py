"""The demo's people and teams, all with the same password (a local demo only).

Two teams own the two services: growth-ml (churn-model) and risk-ml (fraud-model).
Roles are held per team or organisation-wide (team None): alice releases for both
teams, pat reviews growth-ml's releases and raj risk-ml's, carol (compliance) and otto
(on call) work for every team.
"""

DEMO_PASSWORD = "slipway-demo"  # noqa: S105 - printed on screen; local demo only
TEAMS = [
    ("growth-ml", "Growth ML"),
    ("risk-ml", "Risk ML"),
]
# (username, role, teams the role is held for (empty: organisation-wide), what they do)
PEOPLE = [
    (
        "alice",
        "ml-engineer",
        ("growth-ml", "risk-ml"),
        "ML engineer of growth-ml and risk-ml: creates releases, requests promotion",
    ),
    ("pat", "product-reviewer", ("growth-ml",), "product reviewer of growth-ml (churn-model)"),
    ("raj", "product-reviewer", ("risk-ml",), "product reviewer of risk-ml (fraud-model)"),
    ("carol", "compliance-reviewer", (), "compliance reviewer of every team"),
    ("otto", "oncall", (), "on call for every team: watches dashboards, rolls back"),
    ("ada", "admin", (), "admin: sets up teams, services, environments and policies"),
]


def sign_in_lines() -> list[str]:
    return [f"{username:<6} {what}" for username, _, _, what in PEOPLE]


# Accounts for machines: no password (they sign in with an API token), a role each,
# organisation-wide. `ci-bot` is the user of the README's CI example
# (`create_api_token ci-bot`).
SERVICE_ACCOUNTS = [("ci-bot", "ml-engineer", "CI pipeline: creates and submits releases")]
