"""Log set-up: our lines, the standard library's (Celery, uvicorn, warnings) and exceptions all come out
as one JSON object a line; the console format has no colours off a terminal."""

from __future__ import annotations

import json
import logging
import warnings

import billiard.util
import pytest
import structlog

from events.log import configure_logging


def emit_everything() -> None:
    structlog.get_logger().info("ingress.rejected", status=401, reason="invalid_signature")
    logging.getLogger("celery.app.trace").info("Task %s succeeded in %ss", "hookyard.events.process", 0.01)
    try:
        raise ValueError("broken payload")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        structlog.get_logger().exception("ingress.failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("running as root", UserWarning, stacklevel=1)


def test_every_line_is_json_with_exceptions_as_a_field(capsys: pytest.CaptureFixture[str]) -> None:
    """Every line parses as JSON; stdlib lines name their logger; tracebacks are a field, not lines."""
    configure_logging("json", "INFO")
    emit_everything()
    lines = capsys.readouterr().err.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["event"] for p in parsed[:2]] == [
        "ingress.rejected",
        "Task hookyard.events.process succeeded in 0.01s",
    ]
    assert parsed[1]["logger"] == "celery.app.trace" and parsed[1]["level"] == "info"
    failures = [p for p in parsed if "exception" in p]
    assert [p["event"] for p in failures] == ["Exception in ASGI application", "ingress.failed"]
    assert all("ValueError: broken payload" in p["exception"] for p in failures)
    assert parsed[-1]["logger"] == "py.warnings" and "running as root" in parsed[-1]["event"]
    assert all(p["timestamp"].endswith("Z") for p in parsed)


def test_configuring_twice_does_not_double_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Celery's pool children configure again after the fork: still one line per record."""
    configure_logging("json", "INFO")
    configure_logging("json", "INFO")
    logging.getLogger("celery.worker").warning("once")
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_console_format_has_no_colours_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Escape codes only when stderr is a terminal (here it is a capture, so none)."""
    configure_logging("console", "INFO")
    emit_everything()
    err = capsys.readouterr().err
    assert "ingress.rejected" in err and "Task hookyard.events.process succeeded" in err
    assert "ValueError: broken payload" in err
    assert "\x1b[" not in err


def test_level_filters_both_roads(capsys: pytest.CaptureFixture[str]) -> None:
    """HOOKYARD_LOG_LEVEL applies to our lines and to the standard library's alike."""
    configure_logging("json", "WARNING")
    structlog.get_logger().info("quiet.ours")
    logging.getLogger("celery.worker").info("quiet theirs")
    structlog.get_logger().warning("loud.ours")
    logging.getLogger("celery.worker").warning("loud theirs")
    logging.getLogger("alembic.runtime.plugins").warning("loud alembic")
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["loud.ours", "loud theirs", "loud alembic"]


def test_alembic_chatter_is_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    """Alembic's INFO lines (plugin set-up, each schema check) would fill the web log: warnings only."""
    configure_logging("json", "INFO")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    logging.getLogger("alembic.runtime.migration").warning("a real problem")
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["a real problem"]


def test_the_pool_supervisors_lines_are_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    """billiard's own logger (a pool child that exited on a signal) comes out as a JSON line."""
    configure_logging("json", "INFO")
    billiard.util.error("Process %r pid:%r exited with %r", "ForkPoolWorker-1", 42, "signal 15 (SIGTERM)")
    [line] = capsys.readouterr().err.splitlines()
    parsed = json.loads(line)
    assert parsed["logger"] == "multiprocessing" and parsed["level"] == "error"
    assert "exited with 'signal 15 (SIGTERM)'" in parsed["event"]
