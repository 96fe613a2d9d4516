"""COMPARISON ONLY, not part of Hookyard: the webhook endpoint teams write by hand.

FastAPI checks the Shopify HMAC over the raw body and hands the payload to a Celery task with
`.delay()` on Redis. It persists nothing: a 200 means "a message was pushed to Redis", and a Redis
restart without persistence, a crash before the push, or a worker dying mid-task loses the event.
It has no deduplication either. The benchmark measures it next to Hookyard on the same machine,
broker and load generator, so that the ratio hookyard/baseline is what the numbers mean.

Environment: BENCH_BASELINE_BROKER (Redis URL), BENCH_BASELINE_SECRET (the Shopify secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from celery import Celery
from fastapi import FastAPI, Header, HTTPException, Request

SECRET = os.environ.get("BENCH_BASELINE_SECRET", "").encode()

celery_app = Celery("baseline", broker=os.environ.get("BENCH_BASELINE_BROKER", "redis://127.0.0.1:6379/11"))
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)


@celery_app.task(name="baseline.process_shopify_webhook")
def process_shopify_webhook(topic: str, shop: str, payload: dict) -> None:  # type: ignore[type-arg]
    """Where the hand-written handler would do the work (never run in the benchmark)."""


app = FastAPI()


@app.post("/webhooks/{source}")
async def shopify_webhook(
    source: str,
    request: Request,
    x_shopify_hmac_sha256: str = Header(...),
    x_shopify_topic: str = Header(...),
    x_shopify_shop_domain: str = Header(""),
) -> dict[str, bool]:
    body = await request.body()
    expected = base64.b64encode(hmac.new(SECRET, body, hashlib.sha256).digest()).decode()
    if not SECRET or not hmac.compare_digest(expected, x_shopify_hmac_sha256):
        raise HTTPException(status_code=401, detail="invalid signature")
    process_shopify_webhook.delay(x_shopify_topic, x_shopify_shop_domain, json.loads(body))
    return {"ok": True}
