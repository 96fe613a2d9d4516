"""GitHub: sha256= signature over the raw body, X-GitHub-Delivery as the dedupe key, ping as an event."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
import pytest

import connectors.github as connector
from schemas.envelope import Envelope
from schemas.errors import MalformedError, VerificationError
from schemas.records import Message, Ticket
from tests.helpers import NOW, parse, verify, with_headers

SECRET = "It's a Secret to Everybody"
PING = {
    "zen": "Keep it logically awesome.",
    "hook_id": 292430182,
    "hook": {
        "type": "Repository",
        "id": 292430182,
        "active": True,
        "events": ["issues"],
        "created_at": "2021-03-15T19:06:20Z",
    },
    "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
    "sender": {"login": "octocat"},
}


def _request(payload: dict, event: str, delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958"):
    return connector.sign(
        orjson.dumps(payload),
        {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery},
        SECRET,
        NOW,
    )


def _envelope(request) -> Envelope:
    delivery = parse("github", request).deliveries[0]
    return Envelope(
        id="e1",
        source="gh",
        vendor="github",
        type=delivery.type,
        dedupe_key=delivery.dedupe_key,
        received_at=datetime.now(UTC),
        payload=delivery.payload,
    )


def test_ping_is_accepted_as_an_event() -> None:
    """The signed ping GitHub sends on hook creation verifies and becomes github.ping."""
    request = _request(PING, "ping")
    verify("github", request, [SECRET])
    (delivery,) = parse("github", request).deliveries
    assert (delivery.type, delivery.dedupe_key) == ("github.ping", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert connector.normalize(_envelope(request)) == []


def test_legacy_sha1_header_alone_is_refused() -> None:
    """X-Hub-Signature (SHA-1) is never enough: the SHA-256 header is required."""
    request = _request(PING, "ping")
    legacy = with_headers(request, x_hub_signature="sha1=" + "0" * 40, x_hub_signature_256=None)
    with pytest.raises(VerificationError, match="missing"):
        verify("github", legacy, [SECRET])


def test_uppercase_hex_and_wrong_prefix() -> None:
    """Hex case does not matter; a sha1= prefix in the SHA-256 header does."""
    request = _request(PING, "ping")
    digest = request.headers["x-hub-signature-256"].removeprefix("sha256=")
    verify("github", with_headers(request, x_hub_signature_256="sha256=" + digest.upper()), [SECRET])
    with pytest.raises(VerificationError):
        verify("github", with_headers(request, x_hub_signature_256="sha1=" + digest), [SECRET])


def test_form_encoded_deliveries_carry_json_in_payload() -> None:
    """A hook with content type form sends payload=<json>; it parses like the JSON one."""
    body = urlencode({"payload": orjson.dumps(PING).decode()}).encode()
    request = connector.sign(
        body,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-1",
        },
        SECRET,
        NOW,
    )
    verify("github", request, [SECRET])
    assert parse("github", request).deliveries[0].payload == PING


@pytest.mark.parametrize("missing", ["x_github_delivery", "x_github_event"])
def test_missing_delivery_or_event_header_is_malformed(missing: str) -> None:
    """Without its delivery id or event name a verified request cannot be stored."""
    with pytest.raises(MalformedError):
        parse("github", with_headers(_request(PING, "ping"), **{missing: None}))


def test_issue_opened_normalizes_to_a_ticket() -> None:
    """issues.opened maps the documented issue fields onto a Ticket."""
    issue = {
        "id": 1,
        "number": 1347,
        "title": "Found a bug",
        "state": "open",
        "user": {"login": "octocat"},
        "assignee": {"login": "hubot"},
        "labels": [{"name": "bug"}, {"name": "checkout"}],
        "created_at": "2011-04-22T13:33:48Z",
        "updated_at": "2011-04-22T13:33:48Z",
    }
    request = _request({"action": "opened", "issue": issue, "repository": PING["repository"]}, "issues")
    (ticket,) = connector.normalize(_envelope(request))
    assert ticket == Ticket(
        external_id="1",
        subject="Found a bug",
        status="open",
        requester_id="octocat",
        assignee_id="hubot",
        channel="github",
        tags=("bug", "checkout"),
        created_at=datetime(2011, 4, 22, 13, 33, 48, tzinfo=UTC),
        updated_at=datetime(2011, 4, 22, 13, 33, 48, tzinfo=UTC),
    )
    assert parse("github", request).deliveries[0].type == "github.issues.opened"


def test_issue_comment_adds_a_message() -> None:
    """issue_comment.created gives the Ticket and the comment as a Message in it."""
    issue = {"id": 7, "title": "Refund?", "state": "open", "user": {"login": "jane"}}
    comment = {"id": 99, "body": "Any news?", "user": {"login": "jane"}, "created_at": "2024-01-02T03:04:05Z"}
    request = _request({"action": "created", "issue": issue, "comment": comment}, "issue_comment")
    ticket, message = connector.normalize(_envelope(request))
    assert isinstance(ticket, Ticket) and isinstance(message, Message)
    assert (message.external_id, message.conversation_id, message.author_id, message.text) == (
        "99",
        "7",
        "jane",
        "Any news?",
    )
