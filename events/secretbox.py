"""Secrets at rest: OAuth tokens and PKCE verifiers, sealed with Fernet (`cryptography`).

`HOOKYARD_TOKEN_KEYS` lists Fernet keys, comma-separated, newest first (from the environment, or the
secrets file like every `${VAR}`). Sealing uses the first; opening tries each (MultiFernet), so a key
is rotated by putting a new one in front, restarting, running `hookyard connections rekey` (which
reseals everything with the first key), and only then dropping the old one. The same keys sign the
OAuth `state` parameter, through a key derived per Fernet key (HMAC-SHA256 under a fixed label), so
a state signed before a rotation still verifies after it.

A key never shows: not in a repr, not in an error message (a bad key is named by its position).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from schemas.errors import ConfigError, ReauthorizationRequired

TOKEN_KEYS_VAR = "HOOKYARD_TOKEN_KEYS"
STATE_LABEL = b"hookyard oauth state v1"


class UnknownKey(ReauthorizationRequired):
    """A stored secret was sealed with a key HOOKYARD_TOKEN_KEYS no longer lists."""


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str, where: str, position: int) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ConfigError(
            f"{where}: key {position} of {TOKEN_KEYS_VAR} is not a Fernet key "
            "(32 bytes in URL-safe base64; `hookyard connections new-key` makes one)"
        ) from None


class SecretBox:
    """Seal with the first key, open with any; sign with the first key, verify with any."""

    def __init__(self, keys: Sequence[str], where: str = TOKEN_KEYS_VAR) -> None:
        keys = [k.strip() for k in keys if k.strip()]
        if not keys:
            raise ConfigError(f"{where}: {TOKEN_KEYS_VAR} lists no key")
        self._fernet = MultiFernet([_fernet(k, where, i + 1) for i, k in enumerate(keys)])
        self._signing = [
            hmac.new(base64.urlsafe_b64decode(k), STATE_LABEL, hashlib.sha256).digest() for k in keys
        ]

    def __repr__(self) -> str:
        return f"SecretBox({len(self._signing)} keys)"

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise UnknownKey(
                f"a stored token cannot be opened with any key of {TOKEN_KEYS_VAR} (was a key removed "
                "before `hookyard connections rekey`?); put the old key back or connect the source again"
            ) from None

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the first key (for `rekey`)."""
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise UnknownKey(f"a stored token cannot be opened with any key of {TOKEN_KEYS_VAR}") from None

    def sign(self, data: bytes) -> str:
        mac = hmac.new(self._signing[0], data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def verify(self, data: bytes, signature: str) -> bool:
        given = signature.encode("ascii", "replace")
        return any(
            hmac.compare_digest(
                base64.urlsafe_b64encode(hmac.new(key, data, hashlib.sha256).digest()).rstrip(b"="), given
            )
            for key in self._signing
        )


def load_box(env: Mapping[str, str], where: str = TOKEN_KEYS_VAR) -> SecretBox | None:
    """The box from `HOOKYARD_TOKEN_KEYS` in `env`, None when it is unset; ConfigError when a key is bad."""
    raw = env.get(TOKEN_KEYS_VAR, "")
    return SecretBox(raw.split(","), where) if raw.strip() else None
