"""GitHub: hex HMAC-SHA256 of the raw body in X-Hub-Signature-256, no signed timestamp."""

from connectors.base import JSON_OR_FORM
from connectors.github.normalize import normalize, parse
from connectors.github.sample import sample, sign
from connectors.github.verify import verify

name = "github"
content_types = JSON_OR_FORM
timestamped = False
