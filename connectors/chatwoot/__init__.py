"""Chatwoot: hex HMAC-SHA256 of "{ts}.{body}" with sha256= prefix, unix timestamp within ±tolerance."""

from connectors.base import WindowOptions as Options
from connectors.chatwoot.normalize import normalize, parse
from connectors.chatwoot.sample import sample, sign
from connectors.chatwoot.sync import API as api
from connectors.chatwoot.verify import verify

name = "chatwoot"
timestamped = True
