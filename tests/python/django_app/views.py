"""A slow view behind a cache-aside read, the way apps use Redis."""

import time

from django.core.cache import cache
from django.http import JsonResponse

SLOW_QUERY_S = 0.5


def build_report(year):
    """Stands in for an expensive database query."""
    time.sleep(SLOW_QUERY_S)
    months = [{"month": m, "sales": (year * 31 + m * 977) % 10_000} for m in range(1, 13)]
    return {
        "year": year,
        "months": months,
        "total": sum(m["sales"] for m in months),
        "computed_at": time.time(),
    }


def report(request, year):
    key = f"report:{year}"
    data = cache.get(key)
    if data is None:
        data = build_report(year)
        cache.set(key, data, timeout=3600)
    return JsonResponse(data)
