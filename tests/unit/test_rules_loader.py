"""Loading a rules folder: a mistake is one line naming file, rule and field; reloads keep the last good."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from rules.actions import HttpPost, SlackPost, registry
from rules.conditions import OPERATORS
from rules.loader import RulesWatcher, load_rules
from rules.ruleset import RuleSet
from schemas.errors import ConfigError
from tests.unit.rules_kit import ENV, rule_text, write

DOCS_EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "rules" / "big-orders.toml"
OPS = ", ".join(OPERATORS)


def load(folder: Path) -> RuleSet:
    return load_rules(folder, sources={"shop"}, env=ENV)


def with_condition(leaf: str) -> str:
    """The standard rule with a second condition in when.all."""
    return rule_text().replace(
        'all = [{ path = "records.order.total.amount", op = "gt", value = 499 }]',
        f'all = [{{ path = "records.order.total.amount", op = "gt", value = 499 }}, {leaf}]',
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            with_condition('{ path = "records.order.total.amount", op = "gte ", value = 500 }'),
            f"when.all[1].op: unknown operator 'gte '; operators: {OPS}",
        ),
        (
            with_condition('{ path = "payload.note", op = "regex", value = "(unclosed" }'),
            "when.all[1].value: bad regex '(unclosed': missing ), unterminated subpattern at position 0",
        ),
        (
            with_condition('{ path = "payload.line_items.0.price", op = "gt", value = 5 }'),
            "when.all[1].path: 'payload.line_items.0.price' goes into a list at '0'; "
            'list positions are not supported, test the whole list with op = "contains"',
        ),
        (
            with_condition('{ path = "records.ticket.tags.first", op = "eq", value = "vip" }'),
            "when.all[1].path: 'records.ticket.tags.first' goes into a list at 'records.ticket.tags'; "
            'test the whole list with op = "contains"',
        ),
        (
            with_condition('{ path = "records.order.totl", op = "gt", value = 5 }'),
            "when.all[1].path: 'records.order.totl': 'records.order' has no field 'totl'; fields: "
            "external_id, updated_at, number, email, total, financial_status, created_at, customer_id",
        ),
        (
            with_condition('{ path = "records.order.total.amount", op = "gt", value = "500" }'),
            'when.all[1].value: gt compares numbers and datetimes; got "500"',
        ),
        (
            with_condition('{ path = "occurred_at", op = "gt", value = 2024-01-01T00:00:00 }'),
            "when.all[1].value: datetime 2024-01-01T00:00:00 has no offset; write e.g. 2024-01-01T00:00:00Z",
        ),
        (
            with_condition('{ path = "payload.x", op = "eq", value = 1, vlaue = 2 }'),
            "when.all[1].vlaue: Extra inputs are not permitted",
        ),
        (
            with_condition('{ not = { path = "payload.x" } }'),
            "when.all[1].not: path and op go together",
        ),
        (
            rule_text().replace('type = "event.tag"', 'type = "slack.pots"'),
            "actions[0].type: unknown action type 'slack.pots'; "
            "installed: event.tag, http.post, slack.post, sync.trigger",
        ),
        (
            rule_text().replace("${SLACK_WEBHOOK_URL}", "${NOT_SET_ANYWHERE}"),
            "actions[1].webhook_url: ${NOT_SET_ANYWHERE} is not set in the environment or the secrets file",
        ),
        (
            rule_text().replace("{{ records.order.number }}", "{{ recods.order.number }}"),
            "actions[1].text: template uses unknown name 'recods'; names: id, type, source, vendor, "
            "dedupe_key, occurred_at, received_at, headers, payload, records, rule",
        ),
        (
            rule_text().replace("{{ records.order.number }}", "{{ records.order.number "),
            "actions[1].text: template syntax error, line 1: "
            "expected token 'end of print statement', got 'for'",
        ),
        (
            rule_text(extra='[throttle]\nper = "10 minutes"'),
            "throttle.per: duration '10 minutes': use a number and one of s, m, h, d, w (e.g. 7d)",
        ),
        (
            rule_text(extra='mode = "dry"'),
            "mode: Input should be 'live' or 'shadow'",
        ),
        (
            rule_text(extra='[throttle]\nper = "10m"\nkey = "{{ x"'),
            "throttle.key: template syntax error, line 1: unexpected end of template, "
            "expected 'end of print statement'.",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_file_rule_and_field(tmp_path: Path, text: str, message: str) -> None:
    """The loader refuses the folder with exactly this line."""
    path = write(tmp_path / "rules", "big-orders.toml", text)
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "rules")
    assert str(info.value) == f"{path}: rule big-orders: {message}"
    assert "\n" not in str(info.value)


def test_a_duplicate_name_names_both_files(tmp_path: Path) -> None:
    """Two files may not define the same rule name; the second is refused, naming the first."""
    first = write(tmp_path / "rules", "a.toml", rule_text())
    second = write(tmp_path / "rules", "b.toml", rule_text())
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "rules")
    assert str(info.value) == f"{second}: rule big-orders: name: already used by {first}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x\n', "not valid TOML: Illegal character '\\n' (at line 1, column 10)"),
        (rule_text().replace('name = "big-orders"', ""), "rule ?: name: Field required"),
        (
            rule_text(name="Big Orders"),
            "rule Big Orders: name: a rule name is lower-case letters, digits, '-' or "
            "'_', at most 63 characters",
        ),
    ],
)
def test_a_file_without_a_usable_name_is_still_named(tmp_path: Path, text: str, message: str) -> None:
    """TOML errors and bad names still give the file, with the rule as far as it is known."""
    path = write(tmp_path / "rules", "x.toml", text)
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "rules")
    assert str(info.value) == f"{path}: {message}"


def test_sources_and_action_parameters_are_checked_against_the_configuration(tmp_path: Path) -> None:
    """An unknown source in when.sources or in sync.trigger, and a bad signing secret, are load errors."""
    folder = tmp_path / "rules"
    cases = [
        (
            rule_text(extra="").replace("[when]\n", '[when]\nsources = ["shp"]\n'),
            "when.sources: unknown source 'shp'",
        ),
        (
            rule_text()
            .replace('tags = ["big", "{{ source }}"]', "")
            .replace('type = "event.tag"', 'type = "sync.trigger"\nsource = "shp"'),
            "actions[0].source: unknown source 'shp'; configured: shop",
        ),
        (
            rule_text()
            .replace(
                'type = "event.tag"', 'type = "http.post"\nurl = "https://example.com/h"\nsecret = "whsec_!!"'
            )
            .replace('tags = ["big", "{{ source }}"]', ""),
            "actions[0].secret: a Standard Webhooks secret is whsec_ followed by base64",
        ),
        (
            rule_text().replace("[when]\n", '[when]\nvendors = ["shopfy"]\n'),
            "when.vendors: unknown vendor 'shopfy'",
        ),
    ]
    for text, message in cases:
        write(folder, "big-orders.toml", text)
        with pytest.raises(ConfigError, match=r".*") as info:
            load(folder)
        assert message in str(info.value)


def test_a_valid_rule_loads_with_secrets_expanded_and_kept_secret(tmp_path: Path) -> None:
    """${VAR} fills a secret parameter at load; the value never shows in a repr."""
    write(tmp_path / "rules", "big-orders.toml", rule_text())
    rule = load(tmp_path / "rules").rules[0]
    params = rule.actions[1].params
    assert isinstance(params, SlackPost)
    assert params.webhook_url is not None
    assert params.webhook_url.get_secret_value() == ENV["SLACK_WEBHOOK_URL"]
    assert ENV["SLACK_WEBHOOK_URL"] not in repr(rule)
    assert (rule.name, rule.mode, rule.enabled, rule.types) == (
        "big-orders",
        "live",
        True,
        ("order.created",),
    )


def test_the_documented_example_loads(tmp_path: Path) -> None:
    """docs/examples/rules/big-orders.toml is a valid rule, and docs/rules.md quotes it word for word."""
    assert DOCS_EXAMPLE.read_text().strip() in (DOCS_EXAMPLE.parents[2] / "rules.md").read_text()
    rules = load_rules(DOCS_EXAMPLE.parent, sources={"shop"}, env=ENV)
    rule = rules.get("big-orders")
    assert rule is not None and rule.enabled is False and rule.throttle is not None
    assert (rule.throttle.per_s, rule.throttle.max) == (60, 30)


def test_built_in_action_types_come_from_the_entry_point_group() -> None:
    """slack.post, http.post, sync.trigger and event.tag are found through hookyard.actions."""
    assert registry.names() == ["event.tag", "http.post", "slack.post", "sync.trigger"]
    assert registry.get("http.post").params is HttpPost
    assert registry.origin("slack.post") == "hookyard"


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    """rules_dir naming a folder that does not exist stops the command."""
    with pytest.raises(ConfigError, match="the rules folder does not exist"):
        load(tmp_path / "nowhere")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _reloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("hookyard_rules_reloads_total", {"outcome": outcome}) or 0.0


def test_a_broken_edit_keeps_the_last_good_rules_and_says_why(tmp_path: Path) -> None:
    """Edit → reload; broken edit → old rules stay, a log line and a counter say why; fix → reload."""
    folder = tmp_path / "rules"
    path = write(folder, "big-orders.toml", rule_text())
    clock = Clock()
    watcher = RulesWatcher(folder, load, min_interval_s=5, clock=clock)
    assert [r.name for r in watcher.current().rules] == ["big-orders"]

    write(folder, "vip.toml", rule_text("vip"))
    assert [r.name for r in watcher.current().rules] == ["big-orders"]  # not looked at before 5 s
    clock.now = 5
    assert [r.name for r in watcher.current().rules] == ["big-orders", "vip"]

    failed = _reloads("failed")
    path.write_text(rule_text().replace('op = "gt"', 'op = "gte "'))
    clock.now = 10
    with capture_logs() as logs:
        rules = watcher.current()
    assert [r.name for r in rules.rules] == ["big-orders", "vip"]
    assert watcher.error is not None and "when.all[0].op: unknown operator 'gte '" in watcher.error
    assert [entry["event"] for entry in logs] == ["rules.reload_failed"]
    assert logs[0]["error"] == watcher.error and logs[0]["kept"] == 2
    assert _reloads("failed") == failed + 1

    clock.now = 15
    assert watcher.current() is rules  # the broken file is not re-read until it changes again

    (folder / "vip.toml").unlink()
    path.write_text(rule_text().replace("value = 499", "value = 999"))
    clock.now = 20
    assert [r.name for r in watcher.current().rules] == ["big-orders"]
    assert watcher.error is None


def test_a_broken_folder_at_start_is_refused(tmp_path: Path) -> None:
    """The first load is strict: there are no last good rules to fall back on."""
    write(tmp_path / "rules", "big-orders.toml", "name = 1\n")
    with pytest.raises(ConfigError):
        RulesWatcher(tmp_path / "rules", load)
