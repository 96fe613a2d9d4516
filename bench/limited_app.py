"""A vendor stand-in for `python -m bench.budget`: one endpoint behind a fixed-window limiter.

At most BENCH_LIMIT requests per BENCH_WINDOW_S window (windows aligned to the epoch, as Klaviyo,
Zendesk and rack-attack count); a request over it gets 429 with `Retry-After` in whole seconds and is
counted as a violation. One uvicorn process, one event loop: the counts are exact.

    GET /items   200 {"data": [...]} or 429 {"error": "rate_limited"}
    GET /stats   {"admitted": n, "violations": n}
    POST /reset  zero the counts
"""

from __future__ import annotations

import math
import os
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

LIMIT = int(os.environ.get("BENCH_LIMIT", "50"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "1.0"))
ITEMS = [{"id": n, "name": f"item {n}"} for n in range(20)]

counts = {"admitted": 0, "violations": 0}
window = {"slot": -1, "used": 0}


async def items(request: Request) -> JSONResponse:
    now = time.time()
    slot = math.floor(now / WINDOW_S)
    if slot != window["slot"]:
        window.update(slot=slot, used=0)
    if window["used"] >= LIMIT:
        counts["violations"] += 1
        retry_after = max(1, math.ceil((slot + 1) * WINDOW_S - now))
        return JSONResponse(
            {"error": "rate_limited"}, status_code=429, headers={"Retry-After": str(retry_after)}
        )
    window["used"] += 1
    counts["admitted"] += 1
    return JSONResponse({"data": ITEMS})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(counts)


async def reset(request: Request) -> JSONResponse:
    counts.update(admitted=0, violations=0)
    return JSONResponse(counts)


app = Starlette(
    routes=[Route("/items", items), Route("/stats", stats), Route("/reset", reset, methods=["POST"])]
)
