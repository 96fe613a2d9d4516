"""The printed table, the targets (PASS/MISS) and the JSON file."""

from __future__ import annotations

from typing import Any

MB = 1024 * 1024


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if a and b else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    ing = results.get("ingress", {})
    hy, bl = ing.get("hookyard", {}), ing.get("baseline", {})
    if hy.get("saturation") and bl.get("saturation"):
        ratio = _ratio(hy["saturation"]["ok_per_s"], bl["saturation"]["ok_per_s"])
        persisted = all(
            r.get("persisted", {}).get("all") for r in [hy["saturation"], *hy.get("rates", {}).values()]
        )
        out.append(
            {
                "target": "ingress ≥ 5× baseline accepted/s at saturation, persisting every event",
                "value": f"{ratio}× (every 2xx stored: {persisted})",
                "pass": bool(ratio and ratio >= 5 and persisted),
            }
        )
    r2000 = hy.get("rates", {}).get("2000")
    if r2000:
        ok = (
            r2000["p99_ms"] is not None
            and r2000["p99_ms"] <= 20
            and r2000["errors"] == 0
            and r2000["unsent_overload"] == 0
        )
        out.append(
            {
                "target": "ingress p99 ≤ 20 ms at 2,000 req/s offered, no errors",
                "value": f"p99 {r2000['p99_ms']} ms, {r2000['ok_per_s']:.0f} ok/s, errors {r2000['errors']}",
                "pass": ok,
            }
        )
    wk = results.get("workers")
    if wk and "ratio" in wk:
        out.append(
            {
                "target": "workers ≥ 150% of bare Celery no-op throughput",
                "value": f"{wk['ratio'] * 100:.0f}% ({wk['hookyard']['per_s']:.0f} vs "
                f"{wk['noop']['per_s']:.0f}/s)",
                "pass": wk["ratio"] >= 1.50,
            }
        )
    e2e = results.get("e2e", {}).get("e2e")
    if e2e:
        p99, rate = e2e["latency"]["p99_ms"], e2e["offered_per_s"]
        backlog = e2e.get("backlog_at_end", 0)
        out.append(
            {
                "target": f"end-to-end p99 ≤ 100 ms at {rate} events/s for {e2e['seconds']:.0f} s, no "
                "backlog growth (≤ 1 s of load left when it stops)",
                "value": f"p99 {p99} ms (p50 {e2e['latency']['p50_ms']} ms), backlog {backlog:,}",
                "pass": p99 is not None and p99 <= 100 and backlog <= rate and e2e["http"]["errors"] == 0,
            }
        )
    out += dev_targets(results)
    ingress_rss = results.get("memory_peak_rss", {}).get("hookyard-ingress")
    if ingress_rss:
        largest = ingress_rss["largest"] / MB
        out.append(
            {
                "target": "ingress process ≤ 120 MB RSS under load",
                "value": f"{largest:.1f} MB peak",
                "pass": largest <= 120,
            }
        )
    storm = results.get("e2e", {}).get("storm")
    if storm:
        out.append(
            {
                "target": "redelivery storm: zero duplicate effects",
                "value": f"{storm['deliveries']} deliveries × {storm['copies']} → "
                f"{storm['event_rows']} rows, {storm['order_effects']} effects",
                "pass": storm["ok"],
            }
        )
    matching = results.get("rules", {}).get("matching")
    if matching:
        worst = matching[-1]
        out.append(
            {
                "target": f"rules matching ≤ 50 µs per event at {worst['rules']:,} rules",
                "value": f"{worst['matching_us']:.1f} µs",
                "pass": worst["matching_us"] <= 50,
            }
        )
    fetch = results.get("fetch")
    if fetch:
        out.append(
            {
                "target": f"{fetch['updates']:,}-update burst on {fetch['orders']} objects: "
                f"≤ {fetch['orders']} fetches + 1 per window",
                "value": f"{fetch['fetches']} fetches ({fetch['windows']} window(s)), "
                f"settled in {fetch['settle_s']} s",
                "pass": fetch["fetches"] <= fetch["goal"] and fetch["violations"] == 0,
            }
        )
    return out


def dev_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The embedded default (`hookyard dev`): it keeps up at 300/s, drains ≥ 500/s, and its ingress
    takes ≥ 2× what the hand-written baseline takes in the same run."""
    dev = results.get("dev")
    if not dev:
        return []
    paced, drain, sat = dev["paced"], dev["alone"]["drain"], dev["alone"]["ingress"]
    lat = paced["latency"]
    rate = dev["rate"]
    out = [
        {
            "target": f"hookyard dev keeps up with its ingress at {rate}/s offered (backlog ≤ 1 s of load)",
            "value": f"backlog {paced['backlog_at_end']} at the end, received→done p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms; http errors {paced['http']['errors']}",
            "pass": paced["backlog_at_end"] <= rate and paced["left"] == 0 and paced["http"]["errors"] == 0,
        },
        {
            "target": "hookyard dev worker drains ≥ 500 events/s (Shopify orders through its ingress)",
            "value": f"{_f(drain['per_s'])} events/s ({drain['backlog']:,} in {drain['seconds']} s, "
            f"{drain['left']} left); records {dev['records']:,} of {dev['records_expected']:,}",
            "pass": bool(drain["per_s"] and drain["per_s"] >= 500 and drain["left"] == 0)
            and dev["records"] == dev["records_expected"],
        },
    ]
    base = results.get("ingress", {}).get("baseline", {}).get("saturation")
    if base:
        ratio = _ratio(sat["ok_per_s"], base["ok_per_s"])
        out.append(
            {
                "target": "hookyard dev ingress ≥ 2× baseline accepted/s at saturation (neither's worker "
                "running), storing every event",
                "value": f"{ratio}× ({sat['ok_per_s']:,.0f} vs {base['ok_per_s']:,.0f}/s; every 2xx stored: "
                f"{sat['all_stored']})",
                "pass": bool(ratio and ratio >= 2 and sat["all_stored"]),
            }
        )
    return out


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = results["machine"]
    add(
        f"Hookyard benchmark · {results['started_at']} · {m['cpu']} × {m['cores']} cores, "
        f"{m['memory_gb']} GB · Python {m['python']} · {m['postgres']} · Redis {m['redis']}"
    )
    add(
        f"machine load before the run (1-min loadavg): {m['loadavg_before']}; "
        "the load generator runs on the same 2 cores as everything it measures"
    )
    ceil = results.get("loadgen_ceiling")
    if ceil:
        add(
            f"wrk ceiling (bare ASGI, same requests, 64 conns): {ceil['ok_per_s']:,.0f} req/s "
            f"(cores: {_cores(ceil)})"
        )
    ing = results.get("ingress", {})
    if ing:
        hy, bl = ing.get("hookyard", {}), ing.get("baseline", {})
        add("")
        add("INGRESS  signed Shopify orders/create, ~1.46 KB bodies, each delivery distinct")
        add(f"{'':24}{'hookyard':>40}{'baseline (FastAPI+.delay)':>40}{'ratio':>8}")
        rows = [("saturation (wrk, 64 conns)", hy.get("saturation"), bl.get("saturation"))]
        rows += [
            (f"offered {int(r):,}/s", hy.get("rates", {}).get(r), bl.get("rates", {}).get(r))
            for r in sorted(set(hy.get("rates", {})) | set(bl.get("rates", {})), key=int)
        ]
        for label, a, b in rows:
            add(
                f"{label:24}{_cell(a):>40}{_cell(b):>40}"
                f"{_f(_ratio(a and a['ok_per_s'], b and b['ok_per_s']), 2) + '×':>8}"
            )
        add(f"{'':24}{'(2xx per s · p50/p99/p99.9 ms · errors + not sent in time)':>80}")
        for name, side in (("hookyard", hy), ("baseline", bl)):
            s = side.get("saturation") or {}
            p = s.get("persisted")
            if p:
                add(
                    f"  {name}: after saturation {p['answered_2xx']:,} answered 2xx "
                    f"(+ ≤ {s.get('uncounted_max', 0)} in flight when wrk stopped) → "
                    + (
                        f"{p['rows']:,} rows committed, {p['published']:,} ids published "
                        f"(publisher drained {p['publish_drain_s']} s after the load)"
                        if name == "hookyard"
                        else f"{p['messages']:,} messages in Redis, nothing stored"
                    )
                )
            if s:
                add(f"  {name}: cores used at saturation: {_cores(s)}")
    wk = results.get("workers")
    if wk:
        add("")
        add(
            f"WORKERS  {wk['events']:,} preloaded events (signed Shopify orders as the ingress stores them, "
            f"2 records each), {wk['concurrency']} processes, prefork, prefetch 1, acks_late, cold start; "
            f"measured until done or {wk['window_s']} s"
        )
        for label, key, unit in (
            ("hookyard process (≤10 ids/msg)", "hookyard", "events"),
            ("bare Celery no-op", "noop", "tasks"),
        ):
            w = wk[key]
            add(
                f"  {label:23} {w['per_s']:8,.0f} {unit}/s ({w['done']:,} in {w['seconds']} s; "
                f"cores {_cores(w)})"
            )
        if "records" in wk["hookyard"]:
            add(f"  hookyard records written: {wk['hookyard']['records']:,} (2 per event done)")
        add(f"  ratio: {wk['ratio'] * 100:.0f}%")
    e2e = results.get("e2e", {})
    if e2e.get("e2e"):
        e = e2e["e2e"]
        lat = e["latency"]
        add("")
        add(f"END TO END  {e['offered_per_s']}/s offered for {e['seconds']} s, ingress + worker together")
        if lat.get("unfinished"):
            add(
                f"  {lat['unfinished']:,} events were still unfinished {e['drain_after_load_s']} s after the "
                "load; they count with their age so far (so these are lower bounds)"
            )
        add(
            f"  received_at → processed_at over {lat['events']:,} events: p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms, p99.9 {lat['p999_ms']} ms, max {lat['max_ms']} ms"
        )
        add(
            f"  backlog when the load stopped: {e.get('backlog_at_end', 0):,} events "
            f"(waited {e['drain_after_load_s']} s after it for the rest)"
        )
        add(f"  HTTP: {_cell(e['http'])}; cores {_cores(e['http'])}")
    if e2e.get("storm"):
        s = e2e["storm"]
        add("")
        add(
            f"REDELIVERY STORM  {s['deliveries']:,} deliveries, each sent {s['copies']}× at once "
            f"({s['requests']:,} requests, {s['errors']} errors)"
        )
        add(
            f"  answered: {s['accepted']:,} accepted + {s['duplicates']:,} duplicates; "
            f"rows {s['event_rows']:,}; order effects (Σ version) {s['order_effects']:,}; "
            f"duplicate effects {s['duplicate_effects']}"
        )
    rules = results.get("rules", {})
    if rules.get("matching"):
        add("")
        add(
            "RULES  matching one event in process (best of 20 × 500): type with rules / without / first sight"
        )
        for row in rules["matching"]:
            add(
                f"  {row['rules']:>5,} rules: {row['matching_us']:6.1f} µs / {row['no_rules_us']:5.2f} µs / "
                f"{row['first_sight_us']:5.1f} µs"
            )
    if rules.get("throughput"):
        t = rules["throughput"]
        add(
            f"  workers, {t['events']:,} events, {t['concurrency']} processes, every action run done: "
            f"no rules {t['rules_0']['per_s']:,.0f} events/s · 5 matching rules (event.tag) "
            f"{t['rules_5']['per_s']:,.0f} events/s ({t['rules_5']['action_runs']:,} runs) · "
            f"ratio {t['ratio'] * 100:.0f}%"
        )
    fetch = results.get("fetch")
    if fetch:
        add("")
        add(
            f"FETCH  {fetch['updates']:,} webhooks on {fetch['orders']} orders in {fetch['burst_s']} s, "
            f"window {fetch['window_s']:g} s: {fetch['fetches']} API fetches (goal ≤ {fetch['goal']}), "
            f"settled {fetch['settle_s']} s after the first webhook"
        )
        add(f"  by outcome: {fetch['outcomes']}; fetch rows {fetch['fetch_rows']}")
    dev = results.get("dev")
    if dev:
        add("")
        add(_dev_table(dev))
    if results.get("scale"):
        add("")
        add(_scale_table(results["scale"]))
    mem = results.get("memory_peak_rss")
    if mem:
        add("")
        add("MEMORY  peak RSS while under load (whole process tree / largest single process)")
        for role, peak in mem.items():
            add(
                f"  {role:26} {peak['tree'] / MB:8.1f} MB / {peak['largest'] / MB:7.1f} MB "
                f"({peak['processes']} processes)"
            )
    tg = results.get("targets")
    if tg:
        add("")
        add("TARGETS")
        for t in tg:
            add(f"  [{'PASS' if t['pass'] else 'MISS'}] {t['target']}: {t['value']}")
    return "\n".join(lines)


def _dev_table(dev: dict[str, Any]) -> str:
    paced, alone, together = dev["paced"], dev["alone"], dev["together"]
    lat = paced["latency"]
    lines = [
        "EMBEDDED DEFAULT  `hookyard dev`: SQLite database and broker, one worker with embedded beat;",
        "  signed Shopify orders through its own ingress (each gives 2 records)"
        + (f"; env {dev['env']}" if dev.get("env") else ""),
        f"  {dev['rate']}/s offered for {dev['rate_s']} s: {_cell(paced['http'])}",
        f"    received → done over {lat['events']:,} events: p50 {lat['p50_ms']} ms, "
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
        f"backlog at the end {paced['backlog_at_end']:,}, drained {paced['drained_after_s']} s later",
    ]
    for label, run in (("worker paused", alone), ("worker running", together)):
        sat, drain = run["ingress"], run["drain"]
        lines += [
            f"  saturation (wrk, 64 conns), {label}: {_cell(sat)}; {sat['stored']:,} stored of "
            f"{sat['ok_total']:,} answered 2xx, {sat['done_during_load']:,} done meanwhile",
            f"    cores {_cores(sat)}",
            f"    then drained {_f(drain['per_s'])} events/s ({drain['backlog']:,} in {drain['seconds']} s, "
            f"{drain['left']:,} left); cores {_cores(drain)}",
        ]
    lines.append(
        f"  states {dev['states']}; records {dev['records']:,} (expected {dev['records_expected']:,})"
    )
    return "\n".join(lines)


def _scale_table(scale: dict[str, Any]) -> str:
    lines = ["SCALE  one PostgreSQL, one Redis, everything on the same cores (ratios to the first step)"]
    first = scale["ingress"][0]["accepted_per_s"] or 1
    for step in scale["ingress"]:
        lines.append(
            f"  ingress ×{step['processes']}: {step['accepted_per_s']:8,.0f} accepted/s "
            f"({step['accepted_per_s'] / first:.2f}×), p99 {_f(step['p99_ms'])} ms, "
            f"{step['stored']:,} stored of {step['answered_2xx']:,} 2xx; CPU ms/event {_costs(step)}"
        )
    first = scale["workers"][0]["processed_per_s"] or 1
    for step in scale["workers"]:
        lines.append(
            f"  workers ×{step['nodes']}: {step['processed_per_s']:8,.0f} processed/s "
            f"({step['processed_per_s'] / first:.2f}×), {step['done']:,} of {step['events']:,}; "
            f"CPU ms/event {_costs(step)}"
        )
    return "\n".join(lines)


def _costs(step: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v}" for k, v in step["cpu_ms_per_event"].items())
    db = step["db_per_event"]
    return f"{cpu}; per event {db['commits']} commits, {db['bytes']:,.0f} bytes of database"


def _cell(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    return (
        f"{r['ok_per_s']:,.0f} · {_f(r['p50_ms'])}/{_f(r['p99_ms'])}/{_f(r['p999_ms'])} · "
        f"{r['errors'] + r.get('unsent_overload', 0)}"
    )


def _cores(r: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in r.get("cpu_cores", {}).items())
