"""Generic HMAC: any single-signature HMAC scheme, described per source in its options."""

from connectors.generic_hmac.normalize import normalize, parse
from connectors.generic_hmac.options import Options
from connectors.generic_hmac.sample import sample, sign
from connectors.generic_hmac.verify import verify

name = "generic-hmac"
# no `timestamped`: whether a timestamp is signed depends on the source's options (timestamp_header)
