"""Standard Webhooks / Svix: base64 HMAC-SHA256 of "{id}.{ts}.{body}", key = base64 after whsec_."""

from connectors.standard_webhooks.normalize import normalize, parse
from connectors.standard_webhooks.sample import sample, sign
from connectors.standard_webhooks.verify import verify


class StandardWebhooksConnector:
    name = "standard-webhooks"
    timestamped = True
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = StandardWebhooksConnector()
