"""Logging set-up for every process: one JSON object a line in production, readable lines on a terminal.

Two roads lead to stderr and render alike (same processors, same renderer):
- our own structlog loggers write their line directly (about 9 µs a line), and
- the standard library's records (Celery, kombu, uvicorn, SQLAlchemy, Python warnings) go through
  `structlog.stdlib.ProcessorFormatter` on the root logger.
Routing our own lines through the standard library as well would cost about 20 µs a line (measured:
best of 3 × 50,000 `log.info` calls with four fields, to /dev/null, one core of a 2-core AMD EPYC),
twice as much for the line every processed event writes.

In JSON an exception is the field `exception` (the formatted traceback) of its line. Colours only in
the console format and only on a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import billiard.util
import structlog
from structlog.types import Processor

JSON, CONSOLE = "json", "console"
QUIETER = {"alembic": logging.WARNING}  # its INFO lines (plugins, context) say nothing to an operator


class _Stderr:
    """sys.stderr as it is when a line is written, not when logging was configured: whatever replaces
    it later (a daemon, a test harness's capture) gets the lines, and a closed one is never used."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


STDERR: Any = _Stderr()

# A cached logger keeps the processors and level of its first use. Long-lived processes want that
# (it saves a bind per line); a test process that configures logging many times turns it off.
CACHE_LOGGERS = True


def configure_logging(fmt: str = JSON, level: str = "INFO") -> None:
    """(Re)configure structlog and the root logger; safe to call again (it replaces, never adds)."""
    numeric = logging.getLevelName(level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Processor]
    if fmt == JSON:
        rendering = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        rendering = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(STDERR),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    handler = logging.StreamHandler(STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, floor in QUIETER.items():
        logging.getLogger(name).setLevel(max(floor, numeric))
    logging.captureWarnings(True)
    # billiard (Celery's pool) logs on a logger of its own with propagation off and no handler, so a
    # pool child's exit would reach stderr as bare text through logging's last resort: send it to root
    billiard.util.get_logger().propagate = True
