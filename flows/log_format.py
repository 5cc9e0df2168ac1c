"""`--log-format json` / `[logging] format = "json"`: every log line on stderr becomes one JSON object, for log
shippers. The fields come from the record (`extra={"stage": …, "source": …, "registry": …, "counts": …}` where
the code knows them) and else from the Prefect run the line belongs to: its flow run id, the task as the stage,
the task's source or registry parameter. The message is the same text the text format prints, so the PII rules
that hold for it (ids and counts only) hold here too."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

# What the stages' records may carry in `extra`, copied into the object as they are.
EXTRA_FIELDS = ("stage", "source", "registry", "counts")
OWN_PACKAGES = ("flows", "pipeline", "connectors", "ledger", "reconcile", "cmesync")
# The nightly flow's tasks by the stage names the stages' own summaries (and dead letters) use.
STAGE_OF_TASK = {
    "check-broker": "check_broker",
    "pull-source": "pull",
    "reconcile-attendance": "reconcile",
    "publish-outbox": "publish",
    "deliver-registry": "deliver",
    "registry-diff": "registry_diff",
}
TASK_PARAMETERS = {"source_name": "source", "registry_name": "registry"}


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_run_fields(record))
        entry.update({name: getattr(record, name) for name in EXTRA_FIELDS if getattr(record, name, None) is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _run_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Run id, stage and connector of the Prefect flow/task run the record was logged in, where there is one
    (the stream's delivery pump thread, say, runs outside any)."""
    # Imported here: the CLI imports this module at start, and Prefect only when a command needs it.
    from prefect.context import FlowRunContext, TaskRunContext

    fields: dict[str, Any] = {}
    flow_run_id = getattr(record, "flow_run_id", None)
    flow_context = FlowRunContext.get()
    if flow_run_id is None and flow_context is not None and flow_context.flow_run is not None:
        flow_run_id = flow_context.flow_run.id
    if flow_run_id is not None:
        fields["run_id"] = str(flow_run_id)
    task_context = TaskRunContext.get()
    task_name = task_context.task.name if task_context is not None else getattr(record, "task_name", None)
    if task_name:  # a task run logger's record names its task even after the task's context ended
        fields["stage"] = STAGE_OF_TASK.get(task_name, task_name)
    if task_context is not None:
        for parameter, field in TASK_PARAMETERS.items():
            value = task_context.parameters.get(parameter)
            if isinstance(value, str):
                fields[field] = value
    return fields


class LogLines:
    """A text stream whose complete lines become INFO records of `logger` (the CLI's console in JSON mode)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info("%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self.logger.info("%s", self._pending.rstrip())
        self._pending = ""

    def isatty(self) -> bool:
        return False


def use_json_logs(stream: IO[str] | None = None, own_level: str | None = "INFO") -> None:
    """Swap every handler writing to stderr (Prefect's rich console handler included) for one writing JSON
    lines; handlers shipping logs elsewhere (Prefect's API) stay as they are. `own_level`: the level of our
    packages' loggers, whose stage summaries (with counts) are what a log shipper wants; None = leave them."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect configures its handlers on first use; ours must replace them, not precede
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    loggers = [
        logging.getLogger(),
        *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    for logger in loggers:
        for index, old in enumerate(logger.handlers):
            if isinstance(old, logging.StreamHandler) and getattr(old, "stream", None) in (sys.stderr, sys.__stderr__):
                logger.handlers[index] = handler
    if own_level is not None:
        for package in OWN_PACKAGES:
            logging.getLogger(package).setLevel(own_level)
    # Python warnings, too, arrive as records rather than as free text on stderr.
    logging.captureWarnings(True)


def console_to_log(console: Any, name: str = "cmesync.cli") -> None:
    """Point a rich Console (the CLI's stderr console) at log records, one per line, unwrapped."""
    console.file = LogLines(logging.getLogger(name))
    console.width = 10_000
