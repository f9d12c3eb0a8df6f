"""`{% exchange_status_banner %}`: Kraken's system status banner for any page.

It renders the status the feeder last stored; pages whose socket receives the market groups
(the market pages) get each change live, as the element's id is the one the feeder sends.
"""

from __future__ import annotations

from typing import Any

from django import template

from apps.market import presenters, selectors

register = template.Library()


@register.inclusion_tag("market/_exchange_status.html")
def exchange_status_banner() -> dict[str, Any]:
    return {"exchange": presenters.exchange_status(selectors.system_status().status)}
