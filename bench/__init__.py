"""`python -m bench`: Hookyard's benchmark on the real stack (PostgreSQL, Redis, uvicorn, celery).

It spawns everything it measures, in its own database and Redis indexes, and removes them afterwards.
Layout: `payloads` signed Shopify requests · `loadgen` the asyncio load generator (own process) ·
`procs` spawning, RSS and CPU sampling · `stack` database, broker and config · `phases` the
measurements · `dev` the embedded default (`hookyard dev`) · `report` table, targets, JSON · `run`
the orchestration. `baseline_app`, `bare_app` and `noop_app` are comparisons, not product code.
"""
