"""All terminal output of the command line: results, errors and log lines."""

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import riemann

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES
    }


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...`, one event a line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: "
        line += record.getMessage() + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class _StandardErrorHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time, so a live display that redirects
    standard error keeps its log lines above the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send every log line to standard error in the chosen format."""
    handler = _StandardErrorHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def configure_logging_from_environment() -> None:
    """Logging as RIEMANN_LOG_LEVEL and RIEMANN_LOG_FORMAT say (for child processes)."""
    configure_logging(
        os.environ.get("RIEMANN_LOG_LEVEL", "INFO"),
        os.environ.get("RIEMANN_LOG_FORMAT", "text"),
    )


def say(text: str = "", stream: TextIO | None = None) -> None:
    """A line of the command's result, on standard output."""
    print(text, file=stream or sys.stdout, flush=True)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def say_json(value: Any) -> None:
    say(json.dumps(value, indent=2, default=_json_value))


def error(message: str) -> None:
    """One clear line on standard error, for a failure the user can act on."""
    print(f"riemann: error: {message}", file=sys.stderr, flush=True)


def crash_report(exception: BaseException) -> None:
    """A bug: the traceback and the versions, for a bug report."""
    import platform

    print(
        "riemann: internal error, please report it with the lines below\n"
        f"riemann {riemann.__version__}, Python {platform.python_version()}, "
        f"{platform.platform()}",
        file=sys.stderr,
    )
    traceback.print_exception(exception, file=sys.stderr)
