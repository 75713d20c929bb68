from apps.releases.policy import Decision, Rule, open_slots_for, policy_progress

PROD = [Rule("product-reviewer", 1), Rule("compliance-reviewer", 1)]


def test_no_rules_means_met():
    assert policy_progress([], []).met


def test_each_role_needs_its_own_approvals():
    progress = policy_progress(PROD, [Decision("pat", "product-reviewer", True)])
    assert not progress.met
    assert [r.missing for r in progress.roles] == [1, 0]  # sorted: compliance, product
    progress = policy_progress(
        PROD,
        [Decision("pat", "product-reviewer", True), Decision("carol", "compliance-reviewer", True)],
    )
    assert progress.met


def test_any_rejection_rejects_even_when_counts_are_met():
    progress = policy_progress(
        PROD,
        [
            Decision("pat", "product-reviewer", True),
            Decision("carol", "compliance-reviewer", True),
            Decision("paula", "product-reviewer", False),
        ],
    )
    assert progress.rejected and not progress.met
    assert progress.summary == "rejected by paula"


def test_min_count_two():
    rules = [Rule("product-reviewer", 2)]
    one = policy_progress(rules, [Decision("pat", "product-reviewer", True)])
    two = policy_progress(
        rules,
        [Decision("pat", "product-reviewer", True), Decision("paula", "product-reviewer", True)],
    )
    assert not one.met and two.met


def test_open_slots_only_for_roles_held_and_not_full():
    progress = policy_progress(PROD, [Decision("pat", "product-reviewer", True)])
    assert open_slots_for(
        user_roles={"product-reviewer", "compliance-reviewer"}, progress=progress
    ) == ["compliance-reviewer"]
    assert open_slots_for(user_roles={"product-reviewer"}, progress=progress) == []
    assert open_slots_for(user_roles={"oncall"}, progress=progress) == []
