"""kombu's ``filesystem://`` transport, with message files that appear whole.

The embedded default (``make demo``, no Redis) runs Celery on kombu's filesystem
transport. Its ``_put`` creates ``<queue folder>/<ms>_<uuid>.<queue>.msg`` and then writes
the payload; a worker polling the folder can move and read the file in between, get an
empty or cut payload, and die on ``JSONDecodeError`` (kombu issue #1551; seen here: the
demo's worker crashed seconds after start). The file lock kombu takes does not help: the
reader renames, it does not lock.

Here the payload is written to a hidden ``.partial`` file in the same folder and renamed
to its ``.msg`` name when complete (``os.replace`` is atomic within a file system), so a
reader sees a message whole or not at all. kombu's reader only picks names of the form
``<anything>.<queue>.msg``, which the partial name is not. A file that still cannot be
decoded (written by something else) is logged and skipped instead of killing the worker.

Selected in settings with ``CELERY_BROKER_TRANSPORT`` whenever the broker URL is
``filesystem://``; Redis (production, CI) does not go through here.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        while True:
            try:
                return super()._get(queue)
            except ValueError:  # json.JSONDecodeError: not a message this transport wrote
                logger.exception("skipped an unreadable message file in queue %r", queue)


class Transport(filesystem.Transport):
    Channel = Channel
    # A folder has no host: without this kombu warns "No hostname was supplied" on every
    # connection, which reads like a fault in the demo's console.
    default_connection_params = {}
