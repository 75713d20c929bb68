"""The demo runs like a deployment: DEBUG off (our error pages), its own secret key."""

from __future__ import annotations

import importlib


def test_demo_runs_with_debug_off_and_a_generated_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_DEMO_DIR", str(tmp_path / "demo"))
    monkeypatch.setenv("SECRET_KEY", "from-the-shell")
    import apps.demo.__main__ as runner

    runner = importlib.reload(runner)
    env = runner.demo_environment()
    assert env["DEBUG"] == "0"
    assert "SECRET_KEY" not in env  # never both SECRET_KEY and SECRET_KEY_FILE
    key_file = tmp_path / "demo" / "secret-key"
    assert env["SECRET_KEY_FILE"] == str(key_file)
    key = key_file.read_text()
    assert len(key) >= 50 and key_file.stat().st_mode & 0o077 == 0
    assert runner.demo_environment()["SECRET_KEY_FILE"] == str(key_file)
    assert key_file.read_text() == key  # made once, kept
    assert env["SECURE_SSL_REDIRECT"] == "0" and env["STATIC_ROOT"].startswith(str(tmp_path))
