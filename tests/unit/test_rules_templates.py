"""Templates: sandbox escapes refused, output bounded, a missing field rendered empty and reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rules.actions import EventTag, SlackPost
from rules.constants import CUT_MARKER, TEMPLATE_MAX_CHARS
from rules.context import context
from rules.loader import load_rules
from rules.templates import Template, variables
from schemas.errors import ConfigError, PermanentError
from tests.unit.rules_kit import ENV, event, records, rule_text, write

VARIABLES = variables(context(event(), records()), "big-orders")


def render(source: str) -> str:
    return Template(source).render(VARIABLES).text


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ payload.__class__ }}",
        "{{ payload['__class__'] }}",
        "{{ records.order._private }}",
        "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_attribute_escapes_are_refused_at_load(source: str) -> None:
    """Any attribute or key starting with '_' stops the template from compiling."""
    with pytest.raises(ValueError, match="names starting with '_' are off limits"):
        Template(source)


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ ''|attr('__class__') }}", "unsafe"),  # what a static check cannot see
        ("{{ payload.tags.append('x') }}", "unsafe"),  # the event's data cannot be changed
        ("{{ payload.clear() }}", "unsafe"),
        ("{{ 'x' * 10**9 }}", "exceed the output limit"),
        ("{{ [1] * 10**6 }}", "exceed the output limit"),
        ("{{ 2 ** 100000 }}", "exponent 100000 is over"),
    ],
)
def test_the_sandbox_refuses_at_render(source: str, refusal: str) -> None:
    """Escapes and unbounded constructions raise PermanentError instead of running."""
    with pytest.raises(PermanentError, match=refusal):
        render(source)
    assert VARIABLES["payload"]["tags"] == ["vip", "wholesale"]


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}",
        "{{ payload.big }}",
        "{% for i in range(50) %}{% for j in range(1000) %}y{% endfor %}{% endfor %}",
    ],
)
def test_huge_output_is_cut_with_a_marker(source: str) -> None:
    """Output is cut at TEMPLATE_MAX_CHARS and ends with the cut marker."""
    text = Template(source).render({**VARIABLES, "payload": {"big": "z" * 1_000_000}}).text
    assert len(text) == TEMPLATE_MAX_CHARS
    assert text.endswith(CUT_MARKER)


def test_output_under_the_limit_is_untouched() -> None:
    """A short render is returned whole, without a marker."""
    text = Template("{% for i in range(3) %}{{ i }}{% endfor %}").render(VARIABLES, max_chars=10).text
    assert text == "012"


def test_a_missing_field_renders_empty_and_is_reported_but_a_null_is_silent() -> None:
    """payload.nosuch and payload.a.b (a absent) render empty and are listed; a null renders empty quietly."""
    rendered = Template("[{{ payload.nosuch }}|{{ payload.absent.deeper }}|{{ payload.nothing }}]").render(
        VARIABLES
    )
    assert rendered.text == "[||]"
    assert rendered.missing == ("no 'nosuch'", "no 'absent'")


def test_a_missing_field_tested_in_an_if_is_not_reported() -> None:
    """Testing for a field is how a template handles optional data: no warning."""
    rendered = Template("{% if payload.nosuch %}yes{% else %}no{% endif %}").render(VARIABLES)
    assert (rendered.text, rendered.missing) == ("no", ())


def test_values_render_as_an_operator_reads_them() -> None:
    """Money through the money filter, the rule name, a record field, Decimal arithmetic."""
    assert render("{{ rule }}: {{ records.order.number }} {{ records.order.total|money }}") == (
        "big-orders: #1001 500.00 USD"
    )
    assert render("{{ records.order.total.amount * 2 }}") == "1000.00"
    assert render("no braces at all") == "no braces at all"


def test_rendering_is_deterministic_so_a_retry_renders_the_same() -> None:
    """lipsum (random text) is not available; the same event renders the same text."""
    with pytest.raises(ValueError, match="unknown name 'lipsum'"):
        Template("{{ lipsum() }}")
    assert render("{{ id }}-{{ type }}") == render("{{ id }}-{{ type }}") == "ev_1-order.created"


def test_a_match_renders_every_templated_string_and_logs_what_was_missing(tmp_path: Path) -> None:
    """Tags and the Slack text are rendered per event; a missing field leaves a warning on the match."""
    text = rule_text().replace(
        "{{ records.order.total|money }}", "{{ records.order.total|money }} {{ payload.gift }}"
    )
    write(tmp_path / "rules", "big-orders.toml", text)
    rules = load_rules(tmp_path / "rules", env=ENV)
    with capture_logs() as logs:
        tag, slack = rules.match(event(), records())
    assert isinstance(tag.params, EventTag) and tag.params.tags == ["big", "shop"]
    assert isinstance(slack.params, SlackPost) and slack.params.text == "Order #1001 for 500.00 USD "
    assert slack.missing == ("text: no 'gift'",)
    assert [(e["event"], e["rule"], e["action"], e["missing"]) for e in logs] == [
        ("rules.template_missing", "big-orders", 1, ["text: no 'gift'"])
    ]


def test_a_template_the_sandbox_refuses_fails_its_match_alone(tmp_path: Path) -> None:
    """The refused action carries the error and no params; the rule's other action still renders."""
    write(tmp_path / "rules", "big-orders.toml", rule_text().replace("{{ source }}", "{{ 'x' * 10**9 }}"))
    tag, slack = load_rules(tmp_path / "rules", env=ENV).match(event(), records())
    assert tag.params is None and tag.error is not None and "exceed the output limit" in tag.error
    assert slack.error is None and slack.params is not None


def test_a_template_error_in_a_rule_file_is_a_load_error(tmp_path: Path) -> None:
    """An escape written in a rule file stops the load with the field named."""
    path = write(
        tmp_path / "rules", "big-orders.toml", rule_text().replace("{{ source }}", "{{ ''.__class__ }}")
    )
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "rules", env=ENV)
    assert str(info.value) == (
        f"{path}: rule big-orders: actions[0].tags: "
        "template refuses '__class__': names starting with '_' are off limits"
    )


def test_a_json_key_named_like_a_dict_method_reads_the_key() -> None:
    """`payload.items` is the payload's "items" key, not dict.items; methods work when no key hides them."""
    variables_ = {**VARIABLES, "payload": {"items": ["a", "b"], "n": 1}}
    assert Template("{{ payload.items|join(',') }} {{ payload.keys()|list|length }}").render(
        variables_
    ).text == ("a,b 2")
