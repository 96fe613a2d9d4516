"""Meta: hex HMAC-SHA256 of the raw (\\u-escaped) body in X-Hub-Signature-256; GET hub.challenge."""

from connectors.meta.normalize import normalize, parse
from connectors.meta.options import Options
from connectors.meta.sample import sample, sign
from connectors.meta.verify import handshake, verify

name = "meta"
timestamped = False
