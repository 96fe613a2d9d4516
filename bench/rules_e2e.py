"""Events per second through the workers with 5 matching rules vs none (part of `make bench`).

For each side: N accepted orders in the inbox (as the ingress stores them, payloads parsed), their
ids queued as the ingress would, then a cold worker on the vendor queue and the actions queue.
Measured from the first message taken until every event is done *and* every action it set off is
done, or the window ends. The 5 rules each match every order (`total > 100`, the bench orders are
$147.43) and tag it (`event.tag`: a database write, so the figure is Hookyard's own cost, not a
remote's latency): each event records 5 action runs in its finishing transaction, and since
`event.tag` is a write to the same database it runs there too (its runs are recorded done with
their tags; no message, claim or second transaction).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import redis
from sqlalchemy import func, select, text

from bench.phases import HOOKYARD_QUEUE, fast_publish, preload_inbox
from bench.procs import CpuMeter, wait_for
from bench.stack import HOOKYARD_DB, PY, Stack
from events.db import action_runs

RULES = 5


def _rule(i: int) -> str:
    return (
        f'name = "bench-{i}"\n[when]\ntypes = ["order.created"]\n'
        'all = [{ path = "records.order.total.amount", op = "gt", value = 100 }]\n'
        f'[[actions]]\ntype = "event.tag"\ntags = ["bench-{i}", "{{{{ records.order.number }}}}"]\n'
    )


def _configure(stack: Stack, rules: int) -> None:
    """The sources file with (or without) a rules folder of `rules` rules."""
    folder = stack.root / "rules"
    shutil.rmtree(folder, ignore_errors=True)
    config = stack.root / "hookyard.toml"
    sources = config.read_text().split("[sources.", 1)[1]
    if rules:
        folder.mkdir()
        for i in range(rules):
            (folder / f"bench-{i}.toml").write_text(_rule(i))
    config.write_text(('rules_dir = "rules"\n' if rules else "") + "[sources." + sources)


def _done(stack: Stack, events: int, rules: int) -> int:
    """Events whose work is all done: done events, and (with rules) runs done over rules."""
    with stack.engine.connect() as conn:
        finished = stack.count_done()
        if not rules:
            return finished
        runs = conn.execute(
            select(func.count()).select_from(action_runs).where(action_runs.c.state == "done")
        ).scalar_one()
    return min(finished, int(runs) // rules)


def _side(stack: Stack, *, rules: int, count: int, concurrency: int, window_s: float) -> dict[str, Any]:
    from events.queue import PROCESS_TASK
    from events.queue import app as hookyard_app
    from events.settings import get_settings

    _configure(stack, rules)
    stack.reset_data()
    with stack.engine.begin() as conn:
        conn.execute(text("TRUNCATE action_runs, event_tags, rule_gates"))
    ids = preload_inbox(stack, count)
    client = redis.Redis.from_url(stack.redis_url(HOOKYARD_DB))
    per_message = get_settings().ids_per_message
    messages = fast_publish(hookyard_app, PROCESS_TASK, HOOKYARD_QUEUE, ids, client, per_message)
    client.close()
    argv = [PY, "-m", "ops.cli", "worker", "--concurrency", str(concurrency)]
    proc = stack.spawn("hookyard-worker-rules", [*argv, "--queues", f"{HOOKYARD_QUEUE},hookyard.actions"])
    try:
        with CpuMeter({"worker": proc}) as meter:
            t_first = wait_for(
                lambda: stack.queue_length(HOOKYARD_DB, HOOKYARD_QUEUE) < messages and time.perf_counter(),
                timeout=60,
                what="the first message to be taken",
                interval=0.002,
            )
            while (n := _done(stack, count, rules)) < count and time.perf_counter() - t_first < window_s:
                time.sleep(0.05)
            seconds = time.perf_counter() - t_first
    finally:
        stack.stop(proc)
    return {
        "rules": rules,
        "events": count,
        "done": n,
        "seconds": round(seconds, 3),
        "per_s": round(n / seconds, 1),
        "action_runs": n * rules,
        "cpu_cores": meter.cores,
    }


def throughput(stack: Stack, *, count: int, concurrency: int, window_s: float, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"events": count, "concurrency": concurrency, "window_s": window_s}
    try:
        for rules in (0, RULES):
            side = _side(stack, rules=rules, count=count, concurrency=concurrency, window_s=window_s)
            out[f"rules_{rules}"] = side
            log(f"  {rules} matching rules: {side['per_s']} events/s ({side['done']} of {count} fully done)")
    finally:
        _configure(stack, 0)
    out["ratio"] = round(out[f"rules_{RULES}"]["per_s"] / out["rules_0"]["per_s"], 3)
    return out
