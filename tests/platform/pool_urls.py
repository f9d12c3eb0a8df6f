"""URLs for tests/platform/test_db_pool.py: a view that holds a database connection a while."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path

HOLD_SECONDS = 0.2


def hold_connection(request: HttpRequest) -> HttpResponse:
    # Long enough that every request of the test is inside the view at the same time.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [HOLD_SECONDS])
    return HttpResponse(b"ok")


urlpatterns = [path("hold/", hold_connection)]
