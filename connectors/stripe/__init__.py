"""Stripe: hex HMAC-SHA256 of "{t}.{body}", key = the whole whsec_ string, t within ±tolerance."""

from connectors.base import WindowOptions as Options
from connectors.stripe.normalize import normalize, parse
from connectors.stripe.sample import sample, sign
from connectors.stripe.sync import API as api
from connectors.stripe.verify import verify

name = "stripe"
timestamped = True
