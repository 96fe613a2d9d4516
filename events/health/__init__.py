"""Pure health maths: no database, no clock, no I/O — data and time come in as arguments.

- `stats`    quantiles, counter increases across restarts, Poisson tails
- `debounce` turns a series of good/bad evaluations into one breach and one recovery
- `score`    a 0–100 health score per source
- `sla`      SLA targets ("p95 end to end ≤ 60 s", "no gap over 30 min in business hours")
- `anomaly`  the event rate against its own hour-of-week baseline; "stopped arriving",
             "surge", "failure rate jumped"

Beat jobs (in `workers/`) feed them numbers read from the database or the metrics and store the
small state they return; docs/operations.md explains every formula with examples.
"""
