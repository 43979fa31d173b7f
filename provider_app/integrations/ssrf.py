"""Keeping webhook POSTs off our own network (server-side request forgery).

A client chooses the URL we POST to, so a URL naming ``127.0.0.1``, ``10.0.0.5``,
``169.254.169.254`` (cloud metadata) or a host name that resolves to one would let a client
reach internal services. Only http(s) URLs whose every resolved address is globally
routable are accepted, checked when the endpoint is saved and again at each delivery, and
the connection is made to the address that was checked (no second DNS lookup an attacker
could rebind). Loopback is allowed only with ``WEBHOOK_ALLOW_LOOPBACK`` (development and
tests; off by default in production). Redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000


class UnsafeTarget(ValueError):
    """A URL we will not send to, with a reason the client can act on."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_target(url: str) -> Target:
    url = (url or "").strip()
    if len(url) > MAX_URL:
        raise UnsafeTarget(f"Keep the URL under {MAX_URL} characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("Use an http:// or https:// URL.")
    if not parts.hostname:
        raise UnsafeTarget("The URL needs a host name.")
    if parts.username or parts.password:
        raise UnsafeTarget("Leave credentials out of the URL; verify our signature instead.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("The port in the URL is not valid.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.lower(), port, path)


def address_allowed(address: str, *, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, *, allow_loopback: bool) -> list[str]:
    """Every address the host resolves to, all checked; raises UnsafeTarget otherwise."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeTarget(f"The host {target.host} cannot be resolved.") from None
    found = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [a for a in found if not address_allowed(a, allow_loopback=allow_loopback)]
    if not found or refused:
        raise UnsafeTarget(
            f"{target.host} resolves to a private, loopback or reserved address "
            f"({', '.join(refused or found)}); webhooks go to public addresses only.")
    return found


def check_url(url: str, *, allow_loopback: bool) -> Target:
    target = parse_target(url)
    resolve(target, allow_loopback=allow_loopback)
    return target


def pinned_connection(target: Target, address: str, timeout: float
                      ) -> http.client.HTTPConnection:
    """A connection to ``address`` that still sends the URL's host name (Host header, TLS
    SNI and certificate check)."""
    if target.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    def connect_to_checked_address(addr, timeout=None, source_address=None):
        return socket.create_connection((address, addr[1]), timeout, source_address)

    conn._create_connection = connect_to_checked_address  # type: ignore[attr-defined]
    return conn
