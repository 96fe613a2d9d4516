"""What a source may set in `options = {…}` for Acme. Anything else stops Hookyard at start."""

from __future__ import annotations

from pydantic import Field

from connectors.base import WindowOptions


class Options(WindowOptions):
    """The timestamp window (`tolerance_s`, from WindowOptions) and the prefix of Acme's own types."""

    type_prefix: str = Field("acme", min_length=1, max_length=40)
    """An event with no canonical name is stored as `<type_prefix>.<Acme's type>`."""
