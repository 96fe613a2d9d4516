"""The sources file: a public contract, with readable refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import registry
from events.sources import load_sources
from schemas.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookyard.toml"
    path.write_text(text)
    return path


def test_secrets_expand_from_environment_and_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} reads the environment first, then the secrets file; the list order is kept."""
    monkeypatch.setenv("NEW_SECRET", "from-env")
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("# comment\nOLD_SECRET='from-file'\n")
    path = write(
        tmp_path,
        '[sources.pay]\nconnector = "stripe"\n'
        'secrets = ["${NEW_SECRET}", "${OLD_SECRET}"]\noptions = { tolerance_s = 60 }\n',
    )
    source = load_sources(path, secrets_file)["pay"]
    assert source.secret_values() == ["from-env", "from-file"]
    assert source.connector == "stripe"
    assert source.options == registry.get("stripe").options_model(tolerance_s=60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[sources.shop]\nconnector = "shopify"\nsecrets = ["${UNSET_VAR_X}"]\n',
            "sources.shop.secrets: ${UNSET_VAR_X} is not set",
        ),
        ('[sources.shop]\nconnector = "shopify"\nsecrets = []\n', "sources.shop.secrets: no usable secret"),
        ('[sources.shop]\nconnector = "shopify"\nsecrets = [""]\n', "sources.shop.secrets: no usable secret"),
        (
            '[sources.shop]\nconnector = "nosuch"\nsecrets = ["x"]\n',
            "sources.shop.connector: unknown connector",
        ),
        ('[sources.shop]\nconnector = "shopify"\n', "sources.shop.secrets: Field required"),
        ('[sources.shop]\nconnector = "shopify"\nsecrets = ["x"]\ncolour = 1\n', "sources.shop.colour"),
        ('[sources.Bad]\nconnector = "shopify"\nsecrets = ["x"]\n', "sources.Bad: a source name"),
        ("[sources.shop\n", "not valid TOML"),
    ],
)
def test_invalid_config_names_file_source_and_field(tmp_path: Path, text: str, message: str) -> None:
    """Every mistake is one ConfigError naming the file and the field, never a traceback."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sources(path, None)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    """No sources file: the error says which path was tried and how to choose another."""
    with pytest.raises(ConfigError, match="HOOKYARD_CONFIG"):
        load_sources(tmp_path / "absent.toml", None)
