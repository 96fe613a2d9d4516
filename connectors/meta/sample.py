"""A realistic WhatsApp Cloud API inbound text message, shaped like Meta's documented example.

The body is serialized the way Meta sends it: non-ASCII as lowercase `\\uXXXX` escapes.
"""

from __future__ import annotations

import json
import random
import secrets as random_ids
from collections.abc import Mapping

from connectors.base import Options, SignedRequest
from connectors.meta.verify import SCHEME


def sign(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, options: Options | None = None
) -> SignedRequest:
    return SignedRequest(body=body, headers=SCHEME.sign(body, headers, secret, now))


def sample(secret: str, now: float, options: Options | None = None) -> SignedRequest:
    order = random.randint(1000, 9999)
    wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz" + random_ids.token_hex(10).upper()
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": "106540352242922",
                                },
                                "contacts": [{"profile": {"name": "Zoë Müller"}, "wa_id": "16505551234"}],
                                "messages": [
                                    {
                                        "from": "16505551234",
                                        "id": wamid,
                                        "timestamp": str(int(now) - 1),
                                        "type": "text",
                                        "text": {"body": f"Où est ma commande #{order} ?"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        },
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode()
    return sign(body, {"Content-Type": "application/json"}, secret, now)
