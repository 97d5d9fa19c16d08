"""The client address of a request: the peer, or what a trusted proxy says it forwarded for."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(setting: str) -> list[Network]:
    """``VOLREG_TRUSTED_PROXIES``: addresses or CIDR blocks, comma-separated."""
    try:
        return [ipaddress.ip_network(item.strip()) for item in setting.split(",") if item.strip()]
    except ValueError as exc:
        raise ValueError(f"VOLREG_TRUSTED_PROXIES: {exc}") from None


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The peer's address; when the peer is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` that is not itself a trusted proxy (anything left of it may be forged
    by the client). Without trusted proxies the header is ignored: anyone could send one."""
    peer = request.remote or "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from the proxy chain: count it against the proxy
    return peer
