"""Slack: hex HMAC-SHA256 of "v0:{ts}:{body}", X-Slack-Request-Timestamp within ±tolerance."""

from connectors.base import JSON_OR_FORM
from connectors.slack.normalize import normalize, parse
from connectors.slack.sample import sample, sign
from connectors.slack.verify import verify


class SlackConnector:
    name = "slack"
    content_types = JSON_OR_FORM
    timestamped = True
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = SlackConnector()
