"""The sources file: a public contract, with readable refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import registry
from events.sources import load_sources, read_secrets_file
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


def test_the_replay_guard_is_on_where_the_vendor_signs_no_timestamp(tmp_path: Path) -> None:
    """Shopify, GitHub and Meta sign the body alone: guard on by default; Stripe and Slack sign a
    timestamp (the window refuses old captures): guard off; a source can say otherwise."""
    names = {"shop": "shopify", "gh": "github", "fb": "meta", "pay": "stripe", "chat": "slack"}
    text = "".join(f'[sources.{n}]\nconnector = "{c}"\nsecrets = ["s3cret"]\n' for n, c in names.items())
    text += '[sources.quiet]\nconnector = "shopify"\nsecrets = ["s3cret"]\nreplay_guard = false\n'
    sources = load_sources(write(tmp_path, text))
    assert {n: s.replay_guard for n, s in sources.items()} == {
        "shop": True,
        "gh": True,
        "fb": True,
        "pay": False,
        "chat": False,
        "quiet": False,
    }


def source(connector: str, rest: str = "") -> str:
    """A source `s` of this connector with one literal secret, then `rest` (options, forward …)."""
    return f'[sources.s]\nconnector = "{connector}"\nsecrets = ["whsec_x"]\n{rest}'


FORWARD = '[sources.s.forward]\nurl = "https://down.example/hook"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            source("stripe", 'options = { tolerance_s = "five minutes" }\n'),
            "sources.s.options.tolerance_s: Input should be a valid integer",
        ),
        (
            source("stripe", "options = { tolerance_s = 0 }\n"),
            "sources.s.options.tolerance_s: Input should be greater",
        ),
        (
            source("stripe", "options = { tolerance_s = 3601 }\n"),
            "sources.s.options.tolerance_s: Input should be less",
        ),
        (
            source("stripe", "options = { tolerence_s = 300 }\n"),
            "sources.s.options.tolerence_s: not an option of connector stripe (its options: tolerance_s)",
        ),
        (
            source("shopify", "options = { tolerance_s = 300 }\n"),
            "sources.s.options.tolerance_s: not an option of connector shopify (its options: none)",
        ),
        (
            source("zendesk", 'options = { signature_order = "sideways" }\n'),
            "sources.s.options.signature_order",
        ),
        (source("meta", "options = { verify_token = 7 }\n"), "sources.s.options.verify_token"),
        (source("standard-webhooks", 'options = { types = { a = "" } }\n'), "sources.s.options.types.a"),
        (source("generic-hmac"), "sources.s.options.header: Field required"),
        (
            source("generic-hmac", 'options = { header = "X-Sig", template = "{timestamp}.{body}" }\n'),
            "sources.s.options: Value error, template signs {timestamp} but no timestamp header is set",
        ),
        (
            source("generic-hmac", 'options = { header = "X-Sig", type_pointer = "kind" }\n'),
            "sources.s.options.type_pointer: Value error, a JSON pointer starts with '/'",
        ),
        (
            source("stripe", '[sources.s.forward]\nurl = "not a url"\n'),
            "sources.s.forward.url: Input should be a valid URL",
        ),
        (source("stripe", '[sources.s.forward]\nurl = "ftp://down.example/x"\n'), "sources.s.forward.url"),
        (
            source("stripe", "[sources.s.forward]\nurl = 5\n"),
            "sources.s.forward.url: Input should be a valid string",
        ),
        (source("stripe", "[sources.s.forward]\ntimeout_s = 5\n"), "sources.s.forward.url: Field required"),
        (
            source("stripe", FORWARD + "timeout_s = -5\n"),
            "sources.s.forward.timeout_s: Input should be greater",
        ),
        (source("stripe", FORWARD + "timeout_s = 61\n"), "sources.s.forward.timeout_s: Input should be less"),
        (source("stripe", FORWARD + "headers = { X-Token = 5 }\n"), "sources.s.forward.headers.X-Token"),
        (
            source("stripe", FORWARD + 'headers = { "Bad Name" = "v" }\n'),
            "sources.s.forward.headers.Bad Name",
        ),
        (source("stripe", FORWARD + 'headers = { X-A = "a\\r\\nX-B: b" }\n'), "cannot contain line breaks"),
        (source("stripe", FORWARD + "retries = 3\n"), "sources.s.forward.retries: Extra inputs"),
    ],
)
def test_options_and_forward_are_checked_when_the_file_loads(tmp_path: Path, text: str, message: str) -> None:
    """A wrong type, an unknown key, a value out of bounds or an unsound scheme in `options`, and a
    forward block that is not a usable http(s) target: one ConfigError naming file, source and field."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sources(path, None)
    assert str(info.value).startswith(f"{path}: sources.s.")
    assert message in str(info.value)


def test_forward_url_is_checked_after_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """${VAR} in the URL is expanded first: a variable holding no URL is refused, a real one is kept."""
    path = write(tmp_path, source("stripe", '[sources.s.forward]\nurl = "${DOWN_URL}"\n'))
    monkeypatch.setenv("DOWN_URL", "down.example/no-scheme")
    with pytest.raises(ConfigError, match="sources.s.forward.url"):
        load_sources(path, None)
    monkeypatch.setenv("DOWN_URL", "https://user:pw@down.example:8443/hooks/T1/B2?token=t0k")
    forward = load_sources(path, None)["s"].forward
    assert forward is not None
    assert forward.url.get_secret_value() == "https://user:pw@down.example:8443/hooks/T1/B2?token=t0k"
    assert forward.safe_url == "https://down.example:8443/…"


def test_each_source_gets_its_connectors_options_model(tmp_path: Path) -> None:
    """Loaded options are the connector's model, defaults filled in; no options is the empty model."""
    path = write(
        tmp_path,
        source("zendesk", 'options = { signature_order = "body_timestamp" }\n')
        + '[sources.shop]\nconnector = "shopify"\nsecrets = ["x"]\n',
    )
    loaded = load_sources(path, None)
    zendesk = loaded["s"].options
    assert isinstance(zendesk, registry.get("zendesk").options_model)
    assert (zendesk.signature_order, zendesk.tolerance_s, zendesk.type) == (
        "body_timestamp",
        300,
        "zendesk.trigger",
    )
    assert type(loaded["shop"].options) is registry.get("shopify").options_model


SECRETS_FILE_CASES = {
    "comment after an unquoted value": ("KEY=s3cret # rotated in May\n", "s3cret"),
    "hash inside an unquoted value": ("KEY=s3c#ret\n", "s3c#ret"),
    "double quotes keep ' #'": ('KEY="s3cret # not a comment"\n', "s3cret # not a comment"),
    "double quotes decode escapes": ('KEY="line\\tone"\n', "line\tone"),
    "single quotes are literal": ("KEY='a\\tb $HOME'\n", "a\\tb $HOME"),
    "export prefix": ("export KEY=s3cret\n", "s3cret"),
    "spaces around =": ("KEY = s3cret\n", "s3cret"),
    "last line wins": ("KEY=old\nKEY=new\n", "new"),
}


@pytest.mark.parametrize("case", sorted(SECRETS_FILE_CASES))
def test_secrets_file_follows_dotenv_rules(tmp_path: Path, case: str) -> None:
    """Comments, quotes and `export` in the secrets file behave as python-dotenv documents them."""
    text, expected = SECRETS_FILE_CASES[case]
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(text)
    assert read_secrets_file(secrets_file) == {"KEY": expected}


def test_secrets_file_line_it_cannot_read_names_file_and_line_not_the_value(tmp_path: Path) -> None:
    """An unterminated quote is a ConfigError with file and line number; the value never shows."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text('OK=1\nKEY="s3cret-unterminated\n')
    with pytest.raises(ConfigError) as info:
        read_secrets_file(secrets_file)
    assert str(info.value).startswith(f"{secrets_file}:2: ")
    assert "s3cret" not in str(info.value)


def test_secrets_file_keys_without_a_value_are_unset(tmp_path: Path) -> None:
    """A bare KEY line sets nothing, so ${KEY} stays unset and the source refuses to load."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("KEY\n")
    assert read_secrets_file(secrets_file) == {}
