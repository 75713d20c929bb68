"""One JSON object per log line, carrying the request id, for log pipelines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ClientErrorWithoutTraceback(logging.Filter):
    """Log a refused request (4xx) as one line, without the traceback.

    Django logs every PermissionDenied and Http404 on ``django.request`` with the
    exception attached, so an ordinary "your role does not allow this" printed a full
    traceback. The line (method, path, status, request id) is what an operator needs;
    server errors (5xx) keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
