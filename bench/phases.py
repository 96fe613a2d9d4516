"""The measurements. Each returns plain data for the report; none asserts on time."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psutil
import redis
from sqlalchemy import insert

from bench import noop_app, wrk
from bench.payloads import signed_request, split
from bench.procs import CpuMeter, Proc, wait_for
from bench.stack import HOOKYARD_DB, NOOP_DB, PY, Stack
from connectors import registry
from events.db import EventState, events
from events.ids import new_event_id

HOOKYARD_QUEUE = "hookyard.shopify"


def load(stack: Stack, port: int, spec: dict[str, Any], roles: dict[str, Proc]) -> dict[str, Any]:
    """Saturation (closed loop) with wrk; paced loads and storms with the Python load generator in
    its own process. CPU is metered only while it sends."""
    if spec["mode"] == "closed":
        return wrk.saturate("127.0.0.1", port, stack.secret, spec, dict(roles))
    spec = {"host": "127.0.0.1", "port": port, "secret": stack.secret, **spec}
    gen = subprocess.Popen(
        [PY, "-m", "bench.loadgen", orjson.dumps(spec).decode()],
        cwd=stack.root,
        env=stack.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert gen.stdin and gen.stdout
    try:
        if gen.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"load generator failed to start (spec {spec})")
        with CpuMeter({**roles, "loadgen": [psutil.Process(gen.pid)]}) as meter:
            gen.stdin.write(b"go\n")
            gen.stdin.flush()
            line = gen.stdout.readline()
        gen.wait(timeout=30)
    finally:
        if gen.poll() is None:
            gen.kill()
    if not line:
        raise RuntimeError(f"load generator died (spec {spec})")
    result: dict[str, Any] = orjson.loads(line)
    result["cpu_cores"] = meter.cores
    return result


def _pool(rate: float, seconds: float) -> int:
    return int(rate * seconds * 1.02) + 100


def ingress(
    stack: Stack,
    which: str,
    *,
    saturation_s: float,
    rate_s: float,
    rates: list[int],
    connections: int,
    log: Any,
) -> dict[str, Any]:
    """Saturation (closed loop) then fixed offered rates (open loop) against one ingress."""
    proc, port = stack.start_hookyard_web() if which == "hookyard" else stack.start_baseline()
    roles = {"server": proc}
    out: dict[str, Any] = {"role": proc.role}
    try:
        stack.reset_data()
        sat = load(
            stack,
            port,
            {
                "mode": "closed",
                "connections": connections,
                "warmup_s": 2.0,
                "duration_s": saturation_s,
                "pool": _pool(4000, saturation_s),
            },
            roles,
        )
        sat["persisted"] = _settle(stack, which, sat["ok_total"], sat["uncounted_max"])
        out["saturation"] = sat
        log(
            f"  {which} saturation: {sat['ok_per_s']:.0f} ok/s, p99 {sat['p99_ms']} ms, "
            f"errors {sat['errors']}, persisted {sat['persisted']}"
        )
        out["rates"] = {}
        for rate in rates:
            stack.reset_data()
            res = load(
                stack,
                port,
                {
                    "mode": "open",
                    "rate": rate,
                    "duration_s": rate_s,
                    "connections": max(64, min(512, rate // 10)),
                    "pool": _pool(rate, rate_s),
                },
                roles,
            )
            res["persisted"] = _settle(stack, which, res["ok"])
            out["rates"][str(rate)] = res
            log(
                f"  {which} @ {rate}/s offered: {res['ok_per_s']:.0f} ok/s, p50 {res['p50_ms']} "
                f"p99 {res['p99_ms']} p99.9 {res['p999_ms']} ms, errors {res['errors']}, "
                f"unsent {res['unsent_overload']}"
            )
    finally:
        stack.stop(proc)
    return out


def stored_all(stored: int, ok: int, uncounted_max: int = 0) -> bool:
    """Every 2xx stored: as many rows as 2xx answers, plus at most the requests the client sent but
    stopped counting when its time was up (wrk: one per connection per run)."""
    return ok <= stored <= ok + uncounted_max


def _settle(stack: Stack, which: str, ok: int, uncounted_max: int = 0) -> dict[str, Any]:
    """After a load: what was answered 2xx must be stored (Hookyard: rows; baseline: messages).

    Also waits for Hookyard's publisher to push every new id, and reports how long that took
    after the load stopped (a backlog here is work the ingress deferred, not work it avoided)."""
    t0 = time.perf_counter()
    if which == "hookyard":
        stored = stack.count_events()
        with contextlib.suppress(TimeoutError):  # reported below as published < rows
            wait_for(
                lambda: stack.queued_events(HOOKYARD_DB, HOOKYARD_QUEUE) >= stored,
                timeout=120,
                what="the ingress publisher to drain",
                interval=0.1,
            )
        published = stack.queued_events(HOOKYARD_DB, HOOKYARD_QUEUE)
        return {
            "answered_2xx": ok,
            "rows": stored,
            "published": published,
            "all": stored_all(stored, ok, uncounted_max),
            "publish_drain_s": round(time.perf_counter() - t0, 2),
        }
    queued = stack.queue_length(11, "celery")
    return {"answered_2xx": ok, "messages": queued, "all": stored_all(queued, ok, uncounted_max), "rows": 0}


# --- workers --------------------------------------------------------------------------------------


def preload_inbox(stack: Stack, count: int) -> list[str]:
    """Store `count` accepted events exactly as the ingress would (the Shopify connector parses each
    signed order into its payload, type and dedupe key), without the HTTP part."""
    shopify = registry.get("shopify")
    ids: list[str] = []
    host = "127.0.0.1"
    now = datetime.now(UTC)
    relay_at = now + timedelta(hours=1)  # no relay in these phases; keep the rows out of its way
    with stack.engine.begin() as conn:
        for start in range(0, count, 1000):
            rows = []
            for _ in range(min(1000, count - start)):
                headers, body = split(signed_request(stack.secret.encode(), host))
                [delivery] = shopify.parse(body, headers, {}).deliveries
                event_id = new_event_id(time.time())
                ids.append(event_id)
                rows.append(
                    {
                        "id": event_id,
                        "source": "shop",
                        "vendor": "shopify",
                        "type": delivery.type,
                        "dedupe_key": delivery.dedupe_key,
                        "state": EventState.ACCEPTED,
                        "attempts": 0,
                        "received_at": now,
                        "occurred_at": delivery.occurred_at,
                        "available_at": now,
                        "relay_at": relay_at,
                        "relayed": 0,
                        "headers": headers,
                        "body": body,
                        "payload": delivery.payload,
                    }
                )
            conn.execute(insert(events), rows)
    return ids


def fast_publish(
    app: Any, task: str, queue: str, ids: list[str], client: redis.Redis, per_message: int = 1
) -> int:
    """Preload a queue quickly: one message goes through Celery (declaring the queue and giving the
    exact wire format of the installed Celery/kombu), the rest are copies of it with their own ids
    (`per_message` ids each, as the product batches them), LPUSHed in pipelines. Only for
    preloading; the product publishes through Celery. Returns the number of messages."""
    with app.producer_or_acquire() as producer:
        app.send_task(task, args=[[ids[0]]], queue=queue, producer=producer)
    template = orjson.loads(client.rpop(queue))
    body = orjson.loads(base64.b64decode(template["body"]))
    pipe = client.pipeline(transaction=False)
    chunks = [ids[i : i + per_message] for i in range(0, len(ids), per_message)]
    for n, chunk in enumerate(chunks):
        task_id = str(uuid.uuid4())
        body[0] = [chunk]
        message = {
            **template,
            "body": base64.b64encode(orjson.dumps(body)).decode(),
            "headers": {**template["headers"], "id": task_id, "root_id": task_id, "argsrepr": repr([chunk])},
            "properties": {
                **template["properties"],
                "correlation_id": task_id,
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        pipe.lpush(queue, orjson.dumps(message))
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return len(chunks)


def _drain(
    stack: Stack, index: int, queue: str, total: int, done: Any, window_s: float, messages: int | None = None
) -> tuple[float, int]:
    """From the moment a worker takes the first of `messages` (default: one per item) until all
    `total` items are done or `window_s` passed: (seconds, items done). Polled every 20 ms."""
    queued = total if messages is None else messages
    t_first = wait_for(
        lambda: stack.queue_length(index, queue) < queued and time.perf_counter(),
        timeout=60,
        what=f"the first message of {queue} to be taken",
        interval=0.002,
    )
    while (n := done()) < total and time.perf_counter() - t_first < window_s:
        time.sleep(0.02)
    return time.perf_counter() - t_first, n


def workers(stack: Stack, *, count: int, concurrency: int, window_s: float, log: Any) -> dict[str, Any]:
    from events.queue import PROCESS_TASK
    from events.queue import app as hookyard_app
    from events.settings import get_settings

    out: dict[str, Any] = {
        "events": count,
        "concurrency": concurrency,
        "pool": "prefork",
        "prefetch_multiplier": 1,
        "acks_late": True,
        "window_s": window_s,
    }
    # Hookyard: K events in the inbox and their ids in the queue, then a cold worker.
    stack.reset_data()
    ids = preload_inbox(stack, count)
    client = redis.Redis.from_url(stack.redis_url(HOOKYARD_DB))
    per_message = get_settings().ids_per_message
    messages = fast_publish(hookyard_app, PROCESS_TASK, HOOKYARD_QUEUE, ids, client, per_message)
    client.close()
    assert stack.queue_length(HOOKYARD_DB, HOOKYARD_QUEUE) == messages
    proc = stack.start_hookyard_worker(concurrency)
    try:
        with CpuMeter({"worker": proc}) as meter:
            seconds, done = _drain(
                stack, HOOKYARD_DB, HOOKYARD_QUEUE, count, stack.count_done, window_s, messages
            )
        out["hookyard"] = {
            "seconds": round(seconds, 3),
            "done": done,
            "per_s": round(done / seconds, 1),
            "cpu_cores": meter.cores,
        }
    finally:
        stack.stop(proc)
    out["hookyard"]["states"] = stack.states()
    out["hookyard"]["records"] = sum(v["records"] for v in stack.record_versions().values())
    log(
        f"  hookyard worker: {out['hookyard']['per_s']} events/s ({out['hookyard']['states']}, "
        f"{out['hookyard']['records']} records)"
    )

    # Bare Celery: K no-op tasks on the same broker settings, then a cold worker.
    client = redis.Redis.from_url(stack.redis_url(NOOP_DB))
    noop_app.app.conf.broker_url = stack.redis_url(NOOP_DB)
    fast_publish(noop_app.app, noop_app.NOOP_TASK, noop_app.NOOP_QUEUE, ids, client)
    proc = stack.start_noop_worker(concurrency)

    def noop_done() -> int:
        return count - client.llen(noop_app.NOOP_QUEUE) - client.hlen("unacked")

    try:
        with CpuMeter({"worker": proc}) as meter:
            seconds, done = _drain(stack, NOOP_DB, noop_app.NOOP_QUEUE, count, noop_done, window_s)
        out["noop"] = {
            "seconds": round(seconds, 3),
            "done": done,
            "per_s": round(done / seconds, 1),
            "cpu_cores": meter.cores,
        }
    finally:
        stack.stop(proc)
        client.close()
    log(f"  bare celery no-op: {out['noop']['per_s']} tasks/s")
    out["ratio"] = round(out["hookyard"]["per_s"] / out["noop"]["per_s"], 3)
    return out


# --- end to end and redelivery ------------------------------------------------------------------


def end_to_end(
    stack: Stack,
    *,
    rate: int,
    seconds: float,
    concurrency: int,
    storm_deliveries: int,
    storm_copies: int,
    drain_s: float,
    log: Any,
) -> dict[str, Any]:
    """Ingress and worker together: latency from receipt to processed, then a redelivery storm."""
    stack.reset_data()
    web, port = stack.start_hookyard_web()
    worker = stack.start_hookyard_worker(concurrency)
    roles = {"server": web, "worker": worker}
    out: dict[str, Any] = {}
    try:
        wait_for(lambda: b"ready." in worker.log.read_bytes(), timeout=60, what="celery worker ready")
        http = load(
            stack,
            port,
            {
                "mode": "open",
                "rate": rate,
                "duration_s": seconds,
                "connections": 64,
                "pool": _pool(rate, seconds),
            },
            roles,
        )
        backlog = http["ok"] - stack.count_done()  # events answered but not yet done as the load ends
        t0 = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # unfinished events count with their age so far
            wait_for(
                lambda: stack.count_done() >= http["ok"],
                timeout=drain_s,
                what="all events processed",
                interval=0.1,
            )
        out["e2e"] = {
            "offered_per_s": rate,
            "seconds": seconds,
            "http": http,
            "backlog_at_end": backlog,
            "drain_after_load_s": round(time.perf_counter() - t0, 2),
            "latency": stack.e2e_latency(),
            "states": stack.states(),
        }
        lat = out["e2e"]["latency"]
        log(
            f"  e2e @ {rate}/s: received→processed p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
            f"over {lat['events']} events ({lat['unfinished']} unfinished); http p99 {http['p99_ms']} ms; "
            f"backlog when the load stopped {backlog}"
        )

        stack.reset_data()
        res = load(
            stack,
            port,
            {
                "mode": "storm",
                "deliveries": storm_deliveries,
                "copies": storm_copies,
                "connections": storm_copies * 10,
                "pool": storm_deliveries,
            },
            roles,
        )
        wait_for(
            lambda: stack.count_done() >= stack.count_events() > 0,
            timeout=180,
            what="the storm's events processed",
            interval=0.1,
        )
        time.sleep(2.0)  # room for any stray second processing to show itself
        versions = stack.record_versions()
        rows = stack.count_events()
        effects = versions.get("order", {}).get("version_sum", 0)
        out["storm"] = {
            "deliveries": storm_deliveries,
            "copies": storm_copies,
            "requests": res["completed"],
            "answered_2xx": res["ok"],
            "errors": res["errors"],
            "accepted": res["accepted"],
            "duplicates": res["duplicates"],
            "event_rows": rows,
            "states": stack.states(),
            "records": versions,
            "order_effects": effects,
            "duplicate_effects": effects - storm_deliveries,
            "ok": rows == effects == res["accepted"] == storm_deliveries
            and res["ok"] == storm_deliveries * storm_copies,
        }
        log(
            f"  storm: {storm_deliveries}×{storm_copies} → rows {rows}, order effects {effects}, "
            f"accepted {res['accepted']}, duplicates {res['duplicates']}"
        )
    finally:
        stack.stop(worker)
        stack.stop(web)
    return out


def loadgen_ceiling(stack: Stack, *, seconds: float, connections: int, log: Any) -> dict[str, Any]:
    """wrk against an app that does nothing: the most it can measure here."""
    proc, port = stack.start_bare()
    try:
        res = load(
            stack,
            port,
            {
                "mode": "closed",
                "connections": connections,
                "warmup_s": 1.0,
                "duration_s": seconds,
                "pool": _pool(6000, seconds + 1),
            },
            {"server": proc},
        )
    finally:
        stack.stop(proc)
    log(
        f"  wrk ceiling (bare ASGI): {res['ok_per_s']:.0f} req/s, "
        f"loadgen {res['cpu_cores'].get('loadgen')} cores, server {res['cpu_cores'].get('server')} cores"
    )
    return res
