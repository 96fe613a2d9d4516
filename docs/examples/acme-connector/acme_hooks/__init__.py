"""Acme Billing: hex HMAC-SHA256 of "{timestamp}.{body}", X-Acme-Timestamp within ±tolerance."""

from acme_hooks.normalize import normalize, parse
from acme_hooks.options import Options as AcmeOptions
from acme_hooks.sample import sample, sign
from acme_hooks.verify import verify


class AcmeConnector:
    name = "acme"  # the entry point's name, and what a source's `connector =` says
    timestamped = True  # Acme signs a timestamp: the certification kit checks the window
    Options = AcmeOptions  # what a source's `options = {…}` may set; checked when sources load
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = AcmeConnector()
