from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def compact_json(value: Any) -> str:
    """`{"amount":"1.5","asset":"BTC"}`: one line, keys sorted, no padding."""
    if value in (None, {}, []):
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
