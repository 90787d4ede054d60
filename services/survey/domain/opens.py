"""Which opens of the tracking pixel a person made, and which a machine made for them.

A machine open says the email arrived somewhere that fetches images by itself, not that anybody
read it: Apple Mail Privacy Protection fetches every image of every email for the people who turn
it on (from Apple's own addresses, with a bare ``Mozilla/5.0``), whether they look or not; mail
security gateways fetch images and links on delivery, within seconds of sending; and scripts and
headless browsers announce themselves. Gmail's and Yahoo's image proxies are not machine opens:
they fetch when the person opens the email, so they stand for a person.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from enum import StrEnum

#: Apple's own network, which Mail Privacy Protection's image proxy fetches from.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
#: The whole user agent Mail Privacy Protection's proxy sends; a real browser or mail app says more.
APPLE_PROXY_USER_AGENT = "Mozilla/5.0"
#: Clients that are programs, not a person's mail app or browser.
_AUTOMATED = re.compile(
    r"HeadlessChrome|PhantomJS|python-requests|python-httpx|python-urllib|aiohttp|curl/|Wget/"
    r"|Go-http-client|libwww-perl|\b(?:bot|crawler|spider|scanner)\b",
    re.IGNORECASE,
)


class OpenedBy(StrEnum):
    PERSON = "person"
    APPLE_PRIVACY_PROXY = "apple_privacy_proxy"
    ON_DELIVERY = "on_delivery"
    AUTOMATED_CLIENT = "automated_client"


def opened_by(
    *,
    user_agent: str | None,
    client_address: str | None,
    emailed_at: datetime | None,
    now: datetime,
    on_delivery: timedelta,
) -> OpenedBy:
    """Who fetched the pixel, as far as the request tells. ``emailed_at``: when the latest email
    carrying it went out (the invitation or its reminder); an open within ``on_delivery`` of that
    is a gateway's (nobody reads an email that fast often enough to matter)."""
    agent = (user_agent or "").strip()
    if agent == APPLE_PROXY_USER_AGENT or _in_apple_network(client_address):
        return OpenedBy.APPLE_PRIVACY_PROXY
    if not agent or _AUTOMATED.search(agent):
        return OpenedBy.AUTOMATED_CLIENT
    if emailed_at is not None and now - emailed_at < on_delivery:
        return OpenedBy.ON_DELIVERY
    return OpenedBy.PERSON


def _in_apple_network(address: str | None) -> bool:
    if not address:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed in APPLE_NETWORK
