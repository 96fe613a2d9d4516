"""The fakes' shared machinery: limiters, violations, configuration, faults, mutations, control API."""

from __future__ import annotations

import json

import pytest

from tests.fakes import build
from tests.fakes.__main__ import main as run_fake
from tests.fakes.config import ConfigError
from tests.fakes.limits import FixedWindow, Gate, LeakyBucket, retry_after
from tests.fakes.process import InProcessFake, in_process

NOW = 1_700_000_040  # a minute boundary: 1_700_000_040 % 60 == 0
ZD = {"headers": {"Authorization": "Bearer zd_fake"}}
EXPORT = "/api/v2/incremental/tickets/cursor.json"


@pytest.fixture
def zendesk() -> InProcessFake:
    return in_process("zendesk", {"clock": NOW, "counts": {"tickets": 30}})


def test_fixed_window_admits_its_limit_then_waits_for_the_next_window() -> None:
    """Three per window: the fourth waits exactly until the window ends, the next window admits again."""
    window = FixedWindow("w", 3, 60.0)
    for _ in range(3):
        assert window.wait_s("k", NOW + 10, 1) == 0
        window.take("k", NOW + 10, 1)
    assert window.wait_s("k", NOW + 10, 1) == 50.0
    assert window.wait_s("other", NOW + 10, 1) == 0
    assert window.wait_s("k", NOW + 60, 1) == 0


def test_leaky_bucket_waits_for_the_missing_points_and_takes_refunds() -> None:
    """A 100-point bucket at 10/s: after spending 90, a cost of 30 waits 2 s; a refund of 20 makes it fit."""
    bucket = LeakyBucket("cost", 100, 10)
    bucket.take("k", NOW, 90)
    assert bucket.wait_s("k", NOW, 30) == pytest.approx(2.0)
    assert bucket.wait_s("k", NOW + 1, 30) == pytest.approx(1.0)
    bucket.give("k", NOW + 1, 20)
    assert bucket.wait_s("k", NOW + 1, 30) == 0


def test_gate_counts_a_request_before_the_wait_as_a_violation_and_takes_nothing_when_refused() -> None:
    """Refused by one limiter, the other keeps its budget; early retries violate, later ones do not."""
    burst, steady = FixedWindow("burst", 1, 1.0), FixedWindow("steady", 10, 60.0)
    gate = Gate()
    checks = [(burst, "acct", 1.0), (steady, "acct", 1.0)]
    assert gate.admit(NOW, checks).wait_s == 0
    refused = gate.admit(NOW + 0.2, checks)
    assert (refused.wait_s, refused.violation, refused.refused_by) == (pytest.approx(0.8), False, "burst")
    assert steady.used("acct", NOW + 0.2) == 1  # the refused request took nothing
    assert gate.admit(NOW + 0.5, checks).violation is True
    later = gate.admit(NOW + 1.0, checks)
    assert (later.wait_s, later.violation) == (0, False)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")])
def test_retry_after_never_undershoots_the_wait(wait: float, header: str) -> None:
    """Retry-After is whole seconds rounded up, at least 1."""
    assert retry_after(wait) == header


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"limits": {"per_minuet": 5}}, "limits.per_minuet: unknown setting"),
        ({"limits": {"per_minute": "lots"}}, "limits.per_minute: expected int"),
        ({"tokens": "zd_fake"}, "tokens: expected list"),
    ],
)
def test_a_config_mistake_is_refused_when_loaded_naming_the_setting(config: dict, message: str) -> None:
    """Unknown settings and wrong types stop the fake at start, naming the setting."""
    with pytest.raises(ConfigError, match=message):
        build("zendesk", config)


def test_the_runner_exits_2_with_one_line_on_a_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m tests.fakes with a bad --config: exit code 2 and one line naming the setting."""
    assert run_fake(["stripe", "--port", "1", "--config", json.dumps({"limits": {"nope": 1}})]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fake stripe: --config: limits.nope: unknown setting"]


def test_limits_come_from_config() -> None:
    """Every limit is overridable: a per-minute limit of 2 answers the third request with 429."""
    fake = in_process("zendesk", {"clock": NOW, "limits": {"per_minute": 2}})
    client = fake.client(**ZD)
    assert [client.get("/api/v2/tickets/1.json").status_code for _ in range(3)] == [200, 200, 429]


def test_seeding_is_deterministic_per_seed() -> None:
    """The same seed and clock give the same data; another seed gives other data."""

    def tickets(seed: int) -> list[tuple[int, float, str]]:
        store = build("zendesk", {"clock": NOW, "seed": seed}).store
        return [(r.id, r.updated, r.attrs["subject"]) for r in store.rows("tickets")]

    assert tickets(1) == tickets(1)
    assert tickets(1) != tickets(2)


def test_error_fault_hits_count_requests_after_letting_some_through(zendesk: InProcessFake) -> None:
    """after=1, count=2: the first request passes, the next two get the injected 503, then normal again."""
    zendesk.control.fault("error", "/api/v2/tickets/*", status=503, after=1, count=2)
    client = zendesk.client(**ZD)
    statuses = [client.get("/api/v2/tickets/1.json").status_code for _ in range(4)]
    assert statuses == [200, 503, 503, 200]
    assert client.get(EXPORT, params={"start_time": 0}).status_code == 200  # path glob did not match
    assert zendesk.control.endpoint("GET /api/v2/tickets/{id}.json")["faults"] == 2


def test_malformed_fault_truncates_the_json(zendesk: InProcessFake) -> None:
    """A malformed answer keeps its status and content type but is not valid JSON."""
    zendesk.control.fault("malformed", EXPORT)
    response = zendesk.client(**ZD).get(EXPORT, params={"start_time": 0})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_repeat_page_fault_answers_the_previous_page_again(zendesk: InProcessFake) -> None:
    """The second page comes back as the first one, with the same cursor: a client must notice the loop."""
    client = zendesk.client(**ZD)
    first = client.get(EXPORT, params={"start_time": 0, "per_page": 10}).json()
    zendesk.control.fault("repeat_page", EXPORT)
    again = client.get(first["after_url"]).json()
    assert again == first
    assert client.get(first["after_url"]).json()["after_cursor"] != first["after_cursor"]


def test_unauthorized_fault_and_token_rotation(zendesk: InProcessFake) -> None:
    """An expired-token fault answers 401 once; replacing the accepted tokens revokes the old one."""
    zendesk.control.fault("unauthorized", "*")
    client = zendesk.client(**ZD)
    assert client.get("/api/v2/tickets/1.json").status_code == 401
    assert client.get("/api/v2/tickets/1.json").status_code == 200
    zendesk.control.set_tokens(["zd_refreshed"])
    assert client.get("/api/v2/tickets/1.json").status_code == 401
    fresh = zendesk.client(headers={"Authorization": "Bearer zd_refreshed"})
    assert fresh.get("/api/v2/tickets/1.json").status_code == 200


def test_a_scheduled_mutation_lands_between_two_pages(zendesk: InProcessFake) -> None:
    """when={after: 1}: applied just before the second page; the changed ticket comes again at the end."""
    oldest = min(zendesk.fake.store.rows("tickets"), key=lambda r: (r.stream, r.id)).id
    when = {"path": EXPORT, "after": 1}
    assert zendesk.control.mutate("tickets", id=oldest, set={"status": "solved"}, when=when) == []
    client = zendesk.client(**ZD)
    page = client.get(EXPORT, params={"start_time": 0, "per_page": 10}).json()
    seen = [t["id"] for t in page["tickets"]]
    assert seen[0] == oldest and page["tickets"][0]["status"] != "solved"
    page = client.get(page["after_url"]).json()
    assert zendesk.fake.store.get("tickets", oldest).attrs["status"] == "solved"
    zendesk.control.advance(61)  # past the one-minute exclusion
    seen += [t["id"] for t in page["tickets"]]
    while not page["end_of_stream"]:
        page = client.get(page["after_url"]).json()
        seen += [t["id"] for t in page["tickets"]]
    assert seen.count(oldest) == 2 and seen[-1] == oldest
    assert page["tickets"][-1]["status"] == "solved"
    assert sorted(set(seen)) == list(range(1, 31))


def test_mutation_errors_are_400_and_404(zendesk: InProcessFake) -> None:
    """An unknown collection or key is refused; an unknown id is 404, also for a scheduled mutation."""
    http = zendesk.control.http
    assert http.post("/_fake/mutate", json={"collection": "nope", "id": 1}).status_code == 400
    assert (
        http.post("/_fake/mutate", json={"collection": "tickets", "id": 1, "colour": "red"}).status_code
        == 400
    )
    assert http.post("/_fake/mutate", json={"collection": "tickets", "id": 99999}).status_code == 404
    later = {"collection": "tickets", "id": 99999, "when": {"path": "*"}}
    assert http.post("/_fake/mutate", json=later).status_code == 404  # checked when scheduled
    assert zendesk.fake.pending == []
    assert http.post("/_fake/faults", json={"kind": "gremlins"}).status_code == 400


def test_reset_restores_the_seeded_state(zendesk: InProcessFake) -> None:
    """After mutations, faults and traffic, reset gives back the seeded data and zero stats."""
    before = zendesk.control.objects("tickets")
    zendesk.control.mutate("tickets", add=3)
    zendesk.control.mutate("tickets", id=1, delete=True)
    zendesk.control.fault("error", "*", count=None)
    assert zendesk.client(**ZD).get("/api/v2/tickets/2.json").status_code == 500
    zendesk.control.reset()
    assert zendesk.control.objects("tickets") == before
    assert zendesk.client(**ZD).get("/api/v2/tickets/2.json").status_code == 200
    assert zendesk.control.stats()["faults"] == 0


def test_objects_report_deletions_and_additions(zendesk: InProcessFake) -> None:
    """The fake's truth lists deleted records with their flag and added ones with new ids."""
    zendesk.control.mutate("tickets", id=3, delete=True)
    added = zendesk.control.mutate("tickets", add=2)
    objects = {o["id"]: o for o in zendesk.control.objects("tickets")}
    assert objects[3]["deleted"] is True
    assert added == [31, 32] and all(not objects[i]["deleted"] for i in added)


def test_the_clock_moves_forward_on_request(zendesk: InProcessFake) -> None:
    """POST /_fake/clock advances the frozen clock."""
    assert zendesk.control.advance(30) == NOW + 30
    assert zendesk.fake.now() == NOW + 30
