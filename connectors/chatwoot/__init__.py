"""Chatwoot: hex HMAC-SHA256 of "{ts}.{body}" with sha256= prefix, unix timestamp within ±tolerance."""

from connectors.chatwoot.normalize import normalize, parse
from connectors.chatwoot.sample import sample, sign
from connectors.chatwoot.verify import verify


class ChatwootConnector:
    name = "chatwoot"
    timestamped = True
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = ChatwootConnector()
