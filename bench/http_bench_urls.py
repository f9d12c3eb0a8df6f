"""The portal's URLs plus the baseline of `bench/http_bench.py`: the smallest Django view.

It runs behind the same middleware as every page (a signed-in request still loads its session
and user there), so the gap between it and a page is what the page itself costs.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def minimal(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/minimal/", minimal),
    path("", include("kraken_portal.urls")),
]
