"""Where each process writes its metrics (prometheus-client multiprocess mode).

On one machine every launcher keeps the files of its processes in a directory of its own under the
metrics directory (`HOOKYARD_METRICS__DIR`, default `.hookyard/metrics`):

    <dir>/web-<pid>-<host>/      `hookyard web` and its uvicorn workers
    <dir>/worker-<pid>-<host>/   `hookyard worker` and its prefork children (the relay runs there too)
    <dir>/beat-<pid>-<host>/     `hookyard beat` (whether it leads)

A launcher empties its own directory when it starts and removes the directories of launchers on the
same host that are gone, so counters start from zero after a restart (Prometheus sees a reset), while
the files of a child that died stay counted until then, as counters must. `/metrics` on the web app
sums every directory: on a machine that runs both, scrape the web app only. A worker on a machine
without the web app serves its own directory with `hookyard worker --metrics-port`.

This module must not import `events.metrics`: the directory has to be chosen before any metric exists.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LAUNCHER_DIR = re.compile(r"(?P<kind>web|worker|beat)-(?P<pid>\d+)-(?P<host>.+)")


def process_dir() -> Path | None:
    """This process's metric files directory, when multiprocess mode is on."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_process_dir(base: Path, kind: str) -> Path:
    """Give this launcher (and every process it starts) an empty directory of its own under `base`,
    remove those of launchers on this host that are gone, and turn multiprocess mode on."""
    if "events.metrics" in sys.modules:
        raise RuntimeError("events.metrics was imported before the metrics directory was chosen")
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for entry in base.iterdir():
        found = _LAUNCHER_DIR.fullmatch(entry.name)
        if found and found["host"] == host and not _alive(int(found["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
    own = base / f"{kind}-{os.getpid()}-{host}"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir()
    os.environ[MULTIPROC_ENV] = str(own)
    values.ValueClass = values.get_value_class()  # prometheus-client may be imported already
    return own


def own_files_in_child() -> None:
    """A child that closed every descriptor it inherited (Celery's embedded beat process does) must
    not touch its parent's metric files: the values it creates from now on open files of its own."""
    if process_dir() is not None:
        values.ValueClass = values.get_value_class()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def mark_dead(pid: int) -> None:
    """A process is exiting: drop its live gauges (its counters and histograms stay counted)."""
    directory = process_dir()
    if directory is not None:
        mark_process_dead(pid, str(directory))
