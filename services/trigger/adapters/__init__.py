"""Native webhook intake: each platform's signature check and its mapping to our intake events.

One module per platform, each with a pure ``verify`` (raises :class:`Unauthorized`) over the raw
body and a pure ``map`` from the parsed body to zero or more events (or :class:`Ignored`). This
module picks the platform; ``api.webhooks`` is the HTTP edge, ``repository`` stores the endpoints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.trigger.adapters import (
    bigcommerce,
    freshdesk,
    generic,
    helpscout,
    intercom,
    shopify,
    stripe,
    woocommerce,
    zammad,
    zendesk,
)
from services.trigger.adapters.common import Delivery, Headers, Ignored, MapResult, NotJson, Unauthorized

__all__ = [
    "GENERATES_SECRET",
    "PLATFORMS",
    "SECRET_BYTES",
    "THIN_PLATFORMS",
    "Delivery",
    "Ignored",
    "MapResult",
    "NotJson",
    "Unauthorized",
    "is_ping",
    "map_delivery",
    "mapping_of",
    "verify",
]

PLATFORMS = (
    "shopify",
    "woocommerce",
    "zendesk",
    "freshdesk",
    "generic",
    "stripe",
    "intercom",
    "zammad",
    "helpscout",
    "bigcommerce",
)
#: Where the user may leave the secret to us. Shopify signs with the app's client secret, Zendesk
#: and Stripe with a signing secret they issue themselves, Intercom with the app's client secret:
#: for those the user must bring theirs. BigCommerce signs with the app's client secret; left out,
#: ours goes in the hook's custom header.
GENERATES_SECRET = frozenset({"woocommerce", "freshdesk", "generic", "zammad", "helpscout", "bigcommerce"})
#: Random bytes in a generated secret where the platform takes fewer than the default 32 (43
#: characters): Help Scout takes at most 40 characters, which 30 bytes in URL-safe base64 are.
SECRET_BYTES = {"helpscout": 30}
#: Platforms whose payload names a resource rather than carrying it: a delivery is queued and a job
#: fetches the resource (``handlers.bigcommerce``); ``map_delivery`` is not for them.
THIN_PLATFORMS = frozenset({"bigcommerce"})

_ADAPTERS = {
    "shopify": (shopify.verify, shopify.map),
    "woocommerce": (woocommerce.verify, woocommerce.map),
    "zendesk": (zendesk.verify, zendesk.map),
    "freshdesk": (freshdesk.verify, freshdesk.map),
    "stripe": (stripe.verify, stripe.map),
    "intercom": (intercom.verify, intercom.map),
    "zammad": (zammad.verify, zammad.map),
    "helpscout": (helpscout.verify, helpscout.map),
}
_VERIFIERS = {"bigcommerce": bigcommerce.verify}


def mapping_of(platform: str, stored: dict[str, Any] | None) -> generic.GenericMapping | None:
    return generic.parse_mapping(stored) if platform == "generic" and stored is not None else None


def is_ping(platform: str, headers: Headers, body: bytes) -> bool:
    """A platform's unsigned "is this URL alive" request, which must be answered 2xx."""
    return platform == "woocommerce" and woocommerce.is_ping(headers, body)


def verify(
    platform: str,
    secret: str,
    headers: Headers,
    body: bytes,
    now: datetime,
    mapping: generic.GenericMapping | None = None,
) -> None:
    if platform == "generic":
        if mapping is None:
            raise Unauthorized("this endpoint has no mapping, so no signature it could check")
        generic.verify(secret, headers, body, now, mapping.signature)
        return
    if platform in _VERIFIERS:
        _VERIFIERS[platform](secret, headers, body, now)
        return
    _ADAPTERS[platform][0](secret, headers, body, now)


def map_delivery(
    platform: str, delivery: Delivery, mapping: generic.GenericMapping | None = None
) -> MapResult:
    if platform == "generic":
        if mapping is None:
            return Ignored("this endpoint has no mapping")
        return generic.map(delivery, mapping)
    return _ADAPTERS[platform][1](delivery)
