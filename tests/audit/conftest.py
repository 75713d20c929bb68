import pytest


@pytest.fixture(autouse=True)
def anchor_places(settings, tmp_path):
    """Each test gets its own anchor file and no GitOps clone: anchors written by another
    test (whose rows were rolled back) would otherwise read as deleted rows here."""
    settings.AUDIT_ANCHOR_FILE = tmp_path / "anchors" / "audit-anchors.log"
    settings.AUDIT_ANCHOR_GIT_DIR = str(tmp_path / "no-gitops-clone")
    return settings.AUDIT_ANCHOR_FILE
