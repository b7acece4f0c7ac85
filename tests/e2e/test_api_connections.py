"""The connections of a checked request, in process against the local test server.

Only loopback addresses are ever contacted (a guard fails any other connection before it
is made): to act out a public server, a test declares 127.0.0.1 public for the duration
of the test and lets every other address keep its real classification.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from http_server import Server, serving

from checkpointflow import addresses, effects
from checkpointflow.state import SendRequest

REAL_REFUSAL = addresses.refusal


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serving()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Should a check ever let a non-loopback address through, fail instead of sending."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert addresses.numeric_host(address[0]).is_loopback, f"would connect to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def public_loopback(monkeypatch):
    """127.0.0.1 (the test server) counts as public; nothing else changes."""

    def refusal(address):
        return None if str(address) == "127.0.0.1" else REAL_REFUSAL(address)

    monkeypatch.setattr(addresses, "refusal", refusal)


def send(url: str, tmp_path, check: str = addresses.ALL_HOSTS) -> effects.ResponseOutcome:
    request = SendRequest(
        step_id="call",
        attempt=1,
        method="GET",
        url=(url,),
        headers=(),
        query=(),
        body=None,
        timeout_seconds=30,
        delay_seconds=0,
        address_check=check,
    )
    return effects.send(request, tmp_path / "body")


def test_every_redirect_is_checked_when_the_host_came_from_data(server, tmp_path, public_loopback):
    port = server.url.rsplit(":", 1)[1]
    server.script = [(302, "", 0, {"Location": f"http://127.0.0.2:{port}/inside"})]
    outcome = send(server.url + "/start", tmp_path)
    assert outcome.failure_code == "ERR_HTTP_FORBIDDEN_ADDRESS"
    assert "127.0.0.2" in (outcome.failure or "")
    assert [r["path"] for r in server.requests] == ["/start"]


def test_the_connection_goes_to_the_address_that_was_checked(
    server, tmp_path, public_loopback, monkeypatch
):
    """A name that resolves to a public address when checked and to another one a moment
    later (DNS rebinding) is reached at the address that was checked."""
    real = socket.getaddrinfo
    asked = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    server.script = [(200, {"reached": True}, 0)]
    port = server.url.rsplit(":", 1)[1]
    outcome = send(f"http://rebind.test:{port}/x", tmp_path)
    assert (outcome.status, outcome.failure) == (200, None)
    assert (tmp_path / "body").read_text() == '{"reached": true}'
    assert asked == ["rebind.test"]


def test_a_name_that_resolves_to_a_private_address_is_refused(server, tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def private(host, port, *args, **kwargs):
        if host != "intranet.test":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", private)
    outcome = send("http://intranet.test/x", tmp_path)
    assert outcome.failure_code == "ERR_HTTP_FORBIDDEN_ADDRESS"
    assert "'intranet.test' at 10.0.0.7, a private address" in (outcome.failure or "")


def test_without_the_check_nothing_is_refused(server, tmp_path):
    server.script = [(200, {}, 0)]
    assert send(server.url, tmp_path, addresses.OFF).status == 200
