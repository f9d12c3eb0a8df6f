"""The client's address, as far as the deployment can vouch for it.

Every per-address rule (django-axes' lockout, the sign-in and onboarding limits, the address in
the audit trail) reads it here, so a deployment behind a proxy is configured once. By default
only the socket's peer (REMOTE_ADDR) counts: X-Forwarded-For is written by whoever sends the
request, so trusting it without a proxy in front would let a guesser pick a new address for
every attempt. Behind proxies that each append the address they saw to CLIENT_IP_HEADER,
TRUSTED_PROXY_COUNT says how many entries from the right were written by our own proxies; the
entry that many places from the right is the client's, and anything to its left is the client's
own claim.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _address(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _meta_key(header: str) -> str:
    return "HTTP_" + header.strip().upper().replace("-", "_")


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address: REMOTE_ADDR, or the trusted proxies' report of it."""
    remote = _address(request.META.get("REMOTE_ADDR"))
    hops = int(settings.TRUSTED_PROXY_COUNT)
    if hops <= 0:
        return remote
    reported = request.META.get(_meta_key(settings.CLIENT_IP_HEADER), "")
    chain = [entry.strip() for entry in str(reported).split(",") if entry.strip()]
    if len(chain) < hops:
        # Fewer entries than proxies: the request did not come through all of them (or one is
        # misconfigured), so nothing in the header is vouched for.
        return remote
    return _address(chain[-hops]) or remote
