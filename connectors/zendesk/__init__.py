"""Zendesk: base64 HMAC-SHA256 of TIMESTAMP+BODY, ISO-8601 timestamp within ±tolerance."""

from connectors.base import JSON_OR_FORM
from connectors.zendesk.normalize import normalize, parse
from connectors.zendesk.options import Options
from connectors.zendesk.sample import sample, sign
from connectors.zendesk.sync import API as api
from connectors.zendesk.verify import verify

name = "zendesk"
content_types = JSON_OR_FORM
timestamped = True
