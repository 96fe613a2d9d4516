"""Slack: hex HMAC-SHA256 of "v0:{ts}:{body}", X-Slack-Request-Timestamp within ±tolerance."""

from connectors.base import JSON_OR_FORM
from connectors.base import WindowOptions as Options
from connectors.slack.normalize import normalize, parse
from connectors.slack.sample import sample, sign
from connectors.slack.verify import verify

name = "slack"
content_types = JSON_OR_FORM
timestamped = True
