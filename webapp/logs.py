"""Structured logs: with LOG_FORMAT=json every line is one JSON object (settings.LOGGING).

Each record gets the sighting being handled (`observation`, from
`observations.logcontext.sighting_context` or a call's `extra`) and, inside a Celery task, the
task's `task_id` and `task_name`, so one sighting's lines can be followed from the upload
through classification, review and alerts. The default stays plain text for `make run`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from celery._state import get_current_task  # what Celery's own TaskFormatter uses

from observations.logcontext import current_sighting

# Attributes every LogRecord has; anything else on a record came from `extra` or a filter.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# gunicorn's access-log atoms worth a field of their own.
_ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "a": "user_agent",
}


class ContextFilter(logging.Filter):
    """Adds `observation`, `task_id` and `task_name` to records that do not carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "observation", None) is None:
            sighting = current_sighting()
            if sighting is not None:
                record.observation = sighting
        task = get_current_task()
        if task is not None and not getattr(record, "task_id", None):
            request_id = getattr(task.request, "id", None)
            if request_id:
                record.task_id = request_id
                record.task_name = task.name
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            for atom, name in _ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value not in (None, "-"):
                    entry[name] = _number(value) if atom in "sBM" else value
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
