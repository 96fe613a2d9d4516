"""A Meta source's options."""

from __future__ import annotations

from pydantic import SecretStr

from connectors import base


class Options(base.Options):
    """Meta signs no timestamp: the only option is the token its GET handshake must present."""

    verify_token: SecretStr | None = None
    """`hub.verify_token` as set in the Meta app; unset, every handshake is refused."""
