"""Which network addresses an `api` step may reach: the decisions, without any network.

A URL written in the workflow may lead anywhere: its author chose it. When a value from
the run's data (inputs, event answers, step outputs) can reach the host part of the URL,
the request must reach a public address, never a loopback, private, link-local (where
cloud metadata services answer), unspecified, multicast or reserved one, unless the step
sets `allow_private_network: true`. `launch` decides which check a request needs from
the rendered URL; `effects` resolves the host and applies `refusal` to each address
before it connects to that very address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence

import attrs

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORBIDDEN_CODE = "ERR_HTTP_FORBIDDEN_ADDRESS"  # the step's error when an address is refused

# Which connections of a request are checked (SendRequest.address_check).
ALL_HOSTS = "all_hosts"  # the URL's host came from data: every connection, redirects too
OTHER_HOSTS = "other_hosts"  # the host is written in the workflow: only redirects elsewhere
OFF = "off"  # the step sets allow_private_network: true

_SECRET = None  # a `${env.NAME}` value, unknown until the request is sent
_DELIMITERS = "/?#"  # where the authority (user info, host, port) of a URL ends


@attrs.frozen(slots=False)
class Piece:
    """One part of a rendered URL: literal text, a value from the run's data, or a
    `${env.NAME}` value (text None), which counts as chosen by whoever runs `cpf`."""

    text: str | None
    from_data: bool = False


def address_check(pieces: Sequence[Piece], allow_private_network: bool) -> str:
    """The check a request with this URL needs (one of ALL_HOSTS, OTHER_HOSTS, OFF)."""
    if allow_private_network:
        return OFF
    return ALL_HOSTS if host_may_come_from_data(pieces) else OTHER_HOSTS


def host_may_come_from_data(pieces: Sequence[Piece]) -> bool:
    """Whether a character from the run's data may land in the URL's authority (user
    info, host or port), which starts after the first `//` and ends at the next `/`, `?`
    or `#`.

    An env value is not known yet: when one comes before that `//`, the authority may
    start inside it or after a `/` that follows it, and only a `/`, `?` or `#` written
    after some other character surely ends it (as in `${env.BASE}/items/${inputs.id}`).
    """
    if not any(piece.from_data for piece in pieces):
        return False
    state = "scheme"  # then "authority" (its start is known) or "unsure"
    open_ = False  # while "unsure": in a stretch that may be the authority
    previous: str | None = ""
    for char, from_data in _characters(pieces):
        if state == "scheme":
            if char is _SECRET:
                state, open_ = "unsure", True
            elif char == "/" and previous == "/":
                state = "authority"
        elif state == "authority":
            if char is not _SECRET and char in _DELIMITERS:
                return False
            if from_data:
                return True
        elif char is _SECRET or (char == "/" and previous in ("/", _SECRET)):
            open_ = True
        elif char in _DELIMITERS:
            open_ = False
        elif open_ and from_data:
            return True
        previous = char
    return False


def _characters(pieces: Sequence[Piece]) -> Iterator[tuple[str | None, bool]]:
    for piece in pieces:
        if piece.text is None:
            yield _SECRET, False
        else:
            for char in piece.text:
                yield char, piece.from_data


# --- addresses ----------------------------------------------------------------------------

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IETF_PROTOCOLS = ipaddress.IPv4Network("192.0.0.0/24")  # Oracle cloud metadata: 192.0.0.192


def numeric_host(host: str) -> Address | None:
    """The address a host written as a number stands for, in every form the C library
    accepts: `127.0.0.1`, `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, `::1`,
    `[::1]`, `::ffff:127.0.0.1`. None for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    value = _ipv4_number(text)
    return None if value is None else ipaddress.IPv4Address(value)


def _ipv4_number(text: str) -> int | None:
    """`inet_aton`: one to four numbers (decimal, 0-octal or 0x-hex), the last one filling
    the bytes that remain."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    numbers = [_c_number(part) for part in parts]
    *front, last = numbers
    if any(number > 255 for number in front) or last >= 256 ** (5 - len(parts)):
        return None
    return sum(number << (8 * (3 - index)) for index, number in enumerate(front)) + last


def _c_number(text: str) -> int:
    if text[:2].lower() == "0x":
        return int(text[2:], 16)
    return int(text, 8) if text.startswith("0") else int(text)


def loopback_name(host: str) -> bool:
    """`localhost` and names under it always mean this machine (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def refusal(address: Address) -> str | None:
    """What kind of address this is when a checked request must not reach it; None for
    a public address. An IPv4 address inside an IPv6 one (IPv4-mapped, IPv4-compatible,
    6to4, NAT64) is judged as the IPv4 address it carries."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return refusal(inner)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_private or getattr(address, "is_site_local", False):
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved or not address.is_global or _ietf_protocols(address):
        return "a reserved address, not a public one"
    return None


def _ietf_protocols(address: Address) -> bool:
    return isinstance(address, ipaddress.IPv4Address) and address in _IETF_PROTOCOLS


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    number = int(address)
    if 1 < number < 1 << 32 or address in _NAT64:  # IPv4-compatible (::a.b.c.d) or NAT64
        return ipaddress.IPv4Address(number & 0xFFFFFFFF)
    return None
