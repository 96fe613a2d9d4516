"""Klaviyo: hex HMAC-SHA256 of BODY+TIMESTAMP, HTTP-date timestamp; batched data[]."""

from connectors.base import WindowOptions as Options
from connectors.klaviyo.normalize import normalize, parse
from connectors.klaviyo.sample import sample, sign
from connectors.klaviyo.sync import API as api
from connectors.klaviyo.verify import verify

name = "klaviyo"
timestamped = True
