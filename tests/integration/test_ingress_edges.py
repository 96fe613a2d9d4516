"""Ingress edges on a real uvicorn process: what the HTTP server itself sees before our handler."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.integration.harness import Stack

pytestmark = pytest.mark.integration


def raw_request(stack: Stack, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes as they are (no client library would send a raw UTF-8 path); the status line, body."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


def test_raw_utf8_in_the_path_gets_our_json_400(sqlite_stack: Stack) -> None:
    """A path with raw UTF-8 bytes, which the HTTP parser refuses, is answered with JSON like every
    other refusal, and counted on /metrics."""
    sqlite_stack.start_web()
    status, body = raw_request(
        sqlite_stack, b"POST /webhooks/sh\xc3\xb6p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert status == b"HTTP/1.1 400 Bad Request"
    assert orjson.loads(body)["error"] == "malformed_request"
    status, body = raw_request(sqlite_stack, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (
        b'hookyard_ingress_requests_total{reason="malformed_request",source="_unknown",status="400"} 1.0'
        in body
    )
