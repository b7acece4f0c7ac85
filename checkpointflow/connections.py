"""HTTP connections of `api` steps, with the address check applied after DNS resolution.

A checked connection resolves its host once, refuses it when any address it resolves to
is not public (see `addresses`), and then connects to one of exactly those addresses, so
a name that resolves differently a moment later (DNS rebinding) cannot slip past. Every
connection of a request goes through here, redirects included. Through a proxy the proxy
connects, so the target's addresses are checked here and the proxy resolves it again.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from checkpointflow import addresses


class ForbiddenAddress(OSError):
    """A checked connection would reach an address that is not public."""

    def __init__(self, host: str, address: str | None, kind: str, why: str) -> None:
        where = f"host {host!r}" + (f" at {address}" if address and address != host else "")
        super().__init__(
            f"refused to connect to {where}, {kind}: {why}. Set `allow_private_network: "
            "true` on the step if it may reach loopback and private addresses"
        )


@attrs.frozen(slots=False)
class Policy:
    """Which connections of one request are checked (see addresses.address_check)."""

    check: str
    written: tuple[str, int]  # host (in lower case) and port of the URL the step sent

    def checks(self, host: str, port: int) -> bool:
        if self.check == addresses.OFF:
            return False
        return self.check == addresses.ALL_HOSTS or (host.lower(), port) != self.written

    def reason(self) -> str:
        if self.check == addresses.ALL_HOSTS:
            return (
                "the URL's host is not written in the workflow (a value from the run's "
                "inputs, events or step outputs can reach it)"
            )
        host, port = self.written
        return f"a redirect led there from {host}:{port}, the host and port the step names"


def policy_for(check: str, url: str) -> Policy:
    """The policy of a request to `url`, which the workflow's `url` gave."""
    return Policy(check, target(url))


def target(url: str) -> tuple[str, int]:
    """The host (in lower case) and port a request to `url` connects to, read as
    urllib and http.client read it (an IPv6 address without brackets, the scheme's port
    when none is given)."""
    parts = urlsplit(url)
    authority = unquote(parts.netloc)
    default = 443 if parts.scheme.lower() == "https" else 80
    host, port = authority, default
    colon, bracket = authority.rfind(":"), authority.rfind("]")
    if colon > bracket:
        host, digits = authority[:colon], authority[colon + 1 :]
        port = int(digits) if digits else default
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower(), port


def opener(policy: Policy) -> urllib.request.OpenerDirector:
    """An opener for http(s) only (no file:, ftp: or data: URLs, even by redirect)."""
    director = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _HTTPHandler(policy),
        _HTTPSHandler(policy),
        _RedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        director.add_handler(handler)
    return director


def checked_addresses(host: str, port: int, policy: Policy) -> list[str]:
    """The addresses `host` resolves to, when every one of them is public."""
    if addresses.loopback_name(host):
        raise ForbiddenAddress(host, None, "a name for this machine", policy.reason())
    number = addresses.numeric_host(host)
    if number is not None:
        found = [number]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in found:
        kind = addresses.refusal(address)
        if kind is not None:
            raise ForbiddenAddress(host, str(address), kind, policy.reason())
    return list(dict.fromkeys(map(str, found)))


def _connect(policy: Policy, address: tuple[str, int], *args: Any) -> socket.socket:
    """socket.create_connection, to a checked address when the policy asks for it."""
    host, port = address
    if not policy.checks(host, port):
        return socket.create_connection(address, *args)
    failure: OSError | None = None
    for checked in checked_addresses(host, port, policy):
        try:
            return socket.create_connection((checked, port), *args)
        except OSError as error:
            failure = error
    raise failure or OSError(f"{host!r} has no address")


class _Checked:
    policy: Policy

    def __init__(self, host: str, **options: Any) -> None:
        super().__init__(host, **options)  # type: ignore[call-arg]
        self._create_connection = lambda address, *args: _connect(self.policy, address, *args)


def _checked(base: type[http.client.HTTPConnection], policy: Policy) -> Any:
    return type(f"Checked{base.__name__}", (_Checked, base), {"policy": policy})


def _through_proxy(request: urllib.request.Request, policy: Policy) -> bool:
    """Whether the request goes through a proxy; if so its target is checked here, as
    the connection itself goes to the proxy the operator configured."""
    if request.host == unquote(urlsplit(request.full_url).netloc):
        return False
    host, port = target(request.full_url)
    if policy.checks(host, port):
        try:
            checked_addresses(host, port, policy)
        except OSError as error:
            raise urllib.error.URLError(error) from None
    return True


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.connection = _checked(http.client.HTTPConnection, policy)
        self.policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if _through_proxy(req, self.policy):
            return self.do_open(http.client.HTTPConnection, req)
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.connection = _checked(http.client.HTTPSConnection, policy)
        self.policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if _through_proxy(req, self.policy):
            return self.do_open(http.client.HTTPSConnection, req)
        return self.do_open(self.connection, req)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects, without the credentials when they lead to another host."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).hostname != urlsplit(req.full_url).hostname:
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
        return new
