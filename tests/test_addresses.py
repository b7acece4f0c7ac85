"""Which addresses an api step may reach, and when the check applies: pure decisions,
tested without any network traffic."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checkpointflow.addresses import (
    ALL_HOSTS,
    OFF,
    OTHER_HOSTS,
    Piece,
    host_may_come_from_data,
    loopback_name,
    numeric_host,
    refusal,
)
from checkpointflow.launch import request_effect
from checkpointflow.model import ApiStep

PROPERTY = settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])


# --- the classifier -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("127.0.0.1", "127.0.0.1", "loopback"),
        ("127.1", "127.0.0.1", "loopback"),
        ("2130706433", "127.0.0.1", "loopback"),  # decimal
        ("0x7f000001", "127.0.0.1", "loopback"),  # hex
        ("0x7f.1", "127.0.0.1", "loopback"),
        ("0177.0.0.1", "127.0.0.1", "loopback"),  # octal
        ("127.255.1.2", "127.255.1.2", "loopback"),
        ("[::1]", "::1", "loopback"),
        ("::1", "::1", "loopback"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1", "loopback"),  # IPv4-mapped
        ("::ffff:7f00:1", "::ffff:7f00:1", "loopback"),
        ("::127.0.0.1", "::7f00:1", "loopback"),  # IPv4-compatible
        ("0.0.0.0", "0.0.0.0", "unspecified"),
        ("0", "0.0.0.0", "unspecified"),
        ("[::]", "::", "unspecified"),
        ("169.254.169.254", "169.254.169.254", "link-local"),  # cloud metadata
        ("0xa9fea9fe", "169.254.169.254", "link-local"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "link-local"),
        ("64:ff9b::169.254.169.254", "64:ff9b::a9fe:a9fe", "link-local"),  # NAT64
        ("fe80::1", "fe80::1", "link-local"),
        ("fe80::1%eth0", "fe80::1%eth0", "link-local"),
        ("10.0.0.1", "10.0.0.1", "private"),
        ("10.255.255.255", "10.255.255.255", "private"),
        ("172.16.5.4", "172.16.5.4", "private"),
        ("192.168.1.1", "192.168.1.1", "private"),
        ("012.1", "10.0.0.1", "private"),
        ("fd00:ec2::254", "fd00:ec2::254", "private"),  # AWS metadata over IPv6
        ("2002:a00:1::", "2002:a00:1::", "private"),  # 6to4 around 10.0.0.1
        ("fec0::1", "fec0::1", "private"),  # site-local
        ("224.0.0.1", "224.0.0.1", "multicast"),
        ("ff02::1", "ff02::1", "multicast"),
        ("100.100.100.200", "100.100.100.200", "reserved"),  # shared space; a metadata service
        ("192.0.0.192", "192.0.0.192", "reserved"),
        ("240.0.0.1", "240.0.0.1", "private"),
        ("255.255.255.255", "255.255.255.255", "private"),
    ],
)
def test_non_public_addresses_are_refused_in_every_spelling(host, address, kind):
    number = numeric_host(host)
    assert str(number) == address
    assert kind in (refusal(number) or "")


@pytest.mark.parametrize("host", ["8.8.8.8", "93.184.216.34", "1.255.255.255", "2606:4700::1111"])
def test_public_addresses_pass(host):
    assert refusal(numeric_host(host)) is None


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.16777216",
        "08.0.0.1",
        "0x",
        "",
        "a:b",
    ],
)
def test_names_and_malformed_numbers_are_not_addresses(host):
    assert numeric_host(host) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "api.localhost"])
def test_localhost_names_are_this_machine_without_asking_dns(host):
    assert loopback_name(host)


@pytest.mark.parametrize("host", ["localhost.example.com", "mylocalhost", "example.com"])
def test_other_names_are_left_to_resolution(host):
    assert not loopback_name(host)


# --- when the check applies -----------------------------------------------------------------


def check_for(url: str, inputs: dict, allow: bool = False) -> str:
    step = ApiStep(id="call", kind="api", method="GET", url=url, allow_private_network=allow)
    return request_effect(step, {"inputs": inputs}, 1, 1).address_check


@pytest.mark.parametrize(
    ("url", "inputs", "check"),
    [
        ("http://127.0.0.1:8080/items", {}, OTHER_HOSTS),
        ("https://api.example.com/items/${inputs.id}", {"id": "7"}, OTHER_HOSTS),
        ("https://api.example.com/?next=http://${inputs.host}/", {"host": "x"}, OTHER_HOSTS),
        ("https://api.example.com${inputs.path}", {"path": "/v1"}, OTHER_HOSTS),
        ("${inputs.scheme}://api.example.com/", {"scheme": "https"}, OTHER_HOSTS),
        ("${env.BASE}/items/${inputs.id}", {"id": "7"}, OTHER_HOSTS),
        ("https://${env.HOST}/items/${inputs.id}", {"id": "7"}, OTHER_HOSTS),
        ("${inputs.base}/items", {"base": "http://10.0.0.1"}, ALL_HOSTS),
        ("http://${inputs.host}/items", {"host": "10.0.0.1"}, ALL_HOSTS),
        ("http://api.${inputs.zone}.example.com/", {"zone": "eu"}, ALL_HOSTS),
        ("http://127.0.0.1:${inputs.port}/", {"port": 8080}, ALL_HOSTS),
        ("https://api.example.com${inputs.path}", {"path": "@10.0.0.1/"}, ALL_HOSTS),
        ("https://api.example.com${inputs.path}", {"path": ".evil.test/"}, ALL_HOSTS),
        ("http:${inputs.rest}", {"rest": "//10.0.0.1/"}, ALL_HOSTS),
        ("https://${env.HOST}${inputs.path}", {"path": "/x"}, OTHER_HOSTS),
        ("https://${env.HOST}${inputs.path}", {"path": "@x/"}, ALL_HOSTS),
        ("${env.BASE}/${inputs.path}", {"path": "x"}, ALL_HOSTS),  # BASE may be "http:/"
        ("${env.SCHEME}//${inputs.host}/", {"host": "x"}, ALL_HOSTS),
    ],
)
def test_the_check_applies_when_data_can_reach_the_host(url, inputs, check):
    assert check_for(url, inputs) == check


def test_the_opt_in_turns_the_check_off():
    assert check_for("${inputs.base}/items", {"base": "http://10.0.0.1"}, allow=True) == OFF
    assert check_for("http://127.0.0.1/", {}, allow=True) == OFF


# A reference for the property: the authority urllib connects to, as a span of the text.
_AUTHORITY = re.compile(r"([^/:]+):(//)([^/#?]*)", re.DOTALL)
CHUNKS = ["http", "s", ":", "//", "/", "a", ".", "?", "#", "@", "1", "["]
URL_CHARS = st.lists(st.sampled_from(CHUNKS), max_size=6).map("".join)
STARTS = st.sampled_from(["http://", "https://", "http:/", "http:", "http", ""])
URL_START = st.tuples(STARTS, URL_CHARS).map("".join)
KIND = st.sampled_from(["literal", "data", "env"])


def authority_span(text: str) -> range | None:
    match = _AUTHORITY.match(text)
    if match is None or match.group(1).lower() not in ("http", "https"):
        return None  # not a URL cpf sends
    return range(match.start(3), match.end(3))


@PROPERTY
@example(("env", "", "http"), [("literal", "://", ""), ("data", "a", "")])  # scheme in env
@example(("env", "", "http:/"), [("literal", "/", ""), ("data", "a", "")])  # // across
@given(
    st.tuples(KIND, URL_START, URL_START),
    st.lists(st.tuples(KIND, URL_CHARS, URL_CHARS), max_size=4),
)
def test_a_host_judged_written_never_holds_a_character_of_data(first, rest):
    """Whatever the data and the env values turn out to be: when the decision says the
    host is written in the workflow, no character of data is in the authority."""
    parts = [first, *rest]
    pieces = [Piece(None if kind == "env" else text, kind == "data") for kind, text, _ in parts]
    if host_may_come_from_data(pieces):
        return
    text, data_positions = "", set()
    for kind, written, secret in parts:
        value = secret if kind == "env" else written
        if kind == "data":
            data_positions.update(range(len(text), len(text) + len(value)))
        text += value
    span = authority_span(text)
    assert span is None or not data_positions & set(span), (parts, text)


@PROPERTY
@given(URL_CHARS, URL_CHARS)
def test_data_inside_a_written_authority_is_always_noticed(host, data):
    pieces = [Piece("https://" + host), Piece(data, True), Piece("/path")]
    span = authority_span("https://" + host + data + "/path")
    inside = span is not None and any(
        position in span for position in range(8 + len(host), 8 + len(host) + len(data))
    )
    if inside:
        assert host_may_come_from_data(pieces)
