"""Stripe: hex HMAC-SHA256 of "{t}.{body}", key = the whole whsec_ string, t within ±tolerance."""

from connectors.stripe.normalize import normalize, parse
from connectors.stripe.sample import sample, sign
from connectors.stripe.verify import verify


class StripeConnector:
    name = "stripe"
    timestamped = True
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = StripeConnector()
