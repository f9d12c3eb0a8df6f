"""Settings of the server `bench/http_bench.py` measures: the portal's own, plus one URL.

Only the URL configuration differs (`bench/http_bench_urls.py` adds the baseline view), so the
production URL configuration never carries a benchmark route.
"""

from __future__ import annotations

from kraken_portal.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.http_bench_urls"
