"""`hookyard` with one more task, a poison message: running it kills the pool process that runs it,
every time, so the worker hands the message back (`reject_on_worker_lost`) and it comes round again.

`python poison_worker.py worker …` is `hookyard worker …` knowing that task; `python poison_worker.py
poison` publishes one such message to the maintenance queue. Run as a script, never imported by a test.
"""

from __future__ import annotations

import os
import signal
import sys

from events.queue import MAINTENANCE_QUEUE, app
from ops.cli import main

CRASH_TASK = "hookyard.test.crash"


@app.task(name=CRASH_TASK, acks_late=True, reject_on_worker_lost=True)
def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1:] == ["poison"]:
        app.send_task(CRASH_TASK, queue=MAINTENANCE_QUEUE)
    else:
        main()
