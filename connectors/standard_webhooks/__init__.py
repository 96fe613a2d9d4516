"""Standard Webhooks / Svix: base64 HMAC-SHA256 of "{id}.{ts}.{body}", key = base64 after whsec_."""

from connectors.standard_webhooks.normalize import normalize, parse
from connectors.standard_webhooks.options import Options
from connectors.standard_webhooks.sample import sample, sign
from connectors.standard_webhooks.verify import verify

name = "standard-webhooks"
timestamped = True
