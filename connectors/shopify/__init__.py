"""Shopify: base64 HMAC-SHA256 of the raw body, no signed timestamp."""

from connectors.shopify.normalize import normalize, parse
from connectors.shopify.sample import sample, sign
from connectors.shopify.sync import API as api
from connectors.shopify.verify import verify

name = "shopify"
timestamped = False
