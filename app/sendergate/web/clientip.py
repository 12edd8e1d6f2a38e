"""The client's address behind configured proxies, and the key its rate limits count under.

`X-Forwarded-For` is believed only from `http.trusted_proxies`: read from the
right (each proxy appends the address it saw), the first hop that is not a
trusted proxy is the client. Anything to its left was written by the client
and is ignored. An IPv6 client is counted per /64, the block one subscriber
usually holds, so rotating addresses inside it buys nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    """`http.trusted_proxies` entries: addresses or CIDR blocks. ValueError names a bad one."""
    out: list[Network] = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address or CIDR block") from None
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:4711"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the rightmost
    X-Forwarded-For hop that is not one (or the leftmost, when every hop is)."""
    peer_ip = _ip(peer)
    if peer_ip is None or not trusted or not _trusted(peer_ip, trusted):
        return str(peer_ip) if peer_ip is not None else peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:  # garbage where a proxy should have written an address: stop at the last proxy
            break
        client = ip
        if not _trusted(ip, trusted):
            break
    return str(client)


def rate_key(address: str) -> str:
    """What the address's rate limits count under: the IPv4 address, or the IPv6 /64."""
    ip = _ip(address)
    if ip is None:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
