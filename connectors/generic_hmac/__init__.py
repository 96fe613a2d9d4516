"""Generic HMAC: any single-signature HMAC scheme, described per source in its options."""

from connectors.generic_hmac.normalize import normalize, parse
from connectors.generic_hmac.sample import sample, sign
from connectors.generic_hmac.verify import verify


class GenericHmacConnector:
    """Whether a timestamp is signed depends on the source's options, so there is no `timestamped`."""

    name = "generic-hmac"
    verify = staticmethod(verify)
    parse = staticmethod(parse)
    normalize = staticmethod(normalize)
    sample = staticmethod(sample)
    sign = staticmethod(sign)


connector = GenericHmacConnector()
