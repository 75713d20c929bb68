"""The embedded broker (``filesystem://``): messages appear whole, whatever the timing.

kombu's own filesystem transport creates a message file and then writes it; a consumer
polling the folder can read it empty and die (it killed the demo's worker). These tests
race a producer process against a consumer on real folders.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from kombu import Connection

from apps.core.broker_filesystem import Transport

ROOT = Path(__file__).resolve().parents[2]

MESSAGES = 120
PAYLOAD_BYTES = 2_000_000  # big enough that writing one takes a while


def _options(folder: Path) -> dict:
    queue = folder / "queue"
    queue.mkdir(exist_ok=True)
    (folder / "control").mkdir(exist_ok=True)
    (folder / "processed").mkdir(exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(folder / "control"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }


def _body(index: int) -> dict:
    text = (f"{index:06d}" * (PAYLOAD_BYTES // 6))[:PAYLOAD_BYTES]
    return {"index": index, "text": text, "sha": hashlib.sha256(text.encode()).hexdigest()}


def _produce(folder: str, transport: str) -> None:
    with Connection(
        "filesystem://", transport=transport, transport_options=_options(Path(folder))
    ) as conn:
        queue = conn.SimpleQueue("race")
        for index in range(MESSAGES):
            queue.put(_body(index), serializer="json")
        queue.close()


def test_a_consumer_racing_a_producer_reads_every_message_whole(tmp_path):
    options = _options(tmp_path)
    producer = multiprocessing.get_context("spawn").Process(
        target=_produce, args=(str(tmp_path), "apps.core.broker_filesystem:Transport")
    )
    received: list[int] = []
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("race")
        producer.start()
        try:
            while len(received) < MESSAGES:
                message = queue.get(block=True, timeout=60)
                body = message.payload
                assert hashlib.sha256(body["text"].encode()).hexdigest() == body["sha"]
                received.append(body["index"])
                message.ack()
        finally:
            producer.join(timeout=60)
            queue.close()
    assert producer.exitcode == 0
    assert received == list(range(MESSAGES))  # each once, in order
    leftovers = os.listdir(options["data_folder_in"])
    assert leftovers == [], leftovers  # no partial files left behind


def test_an_unreadable_message_file_is_skipped_not_fatal(tmp_path, caplog):
    options = _options(tmp_path)
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("jobs")
        # Written by something else: the name of a message, no content (sorts first).
        Path(options["data_folder_in"], "0_broken.jobs.msg").write_bytes(b"")
        queue.put({"n": 1}, serializer="json")
        message = queue.get(block=True, timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()
    assert "unreadable message file" in caplog.text


def test_the_embedded_default_broker_uses_the_atomic_transport(tmp_path):
    # The project's own settings (not the tests'), as `make demo` loads them.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_BROKER_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings", DEBUG="1", SLIPWAY_VAR_DIR=str(tmp_path)
    )
    probe = (
        "import django; django.setup(); from controlplane.celery import app; "
        "c = app.connection_for_write(); t = type(c.transport); "
        "print(t.__module__ + ':' + t.__name__, c.transport_options['data_folder_in']); c.release()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    transport, folder = result.stdout.split()
    assert transport == "apps.core.broker_filesystem:Transport"
    assert Path(folder) == tmp_path / "broker" / "queue"


def test_a_connection_logs_no_missing_hostname_warning(tmp_path, caplog):
    """A folder has no host; kombu's "No hostname was supplied" read like a fault."""
    with Connection(
        "filesystem://", transport=Transport, transport_options=_options(tmp_path)
    ) as conn:
        conn.default_channel  # noqa: B018 - opening the channel is what logged it
        conn.info()
    assert "No hostname" not in caplog.text
