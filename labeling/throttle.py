"""Fixed-window rate limits in Django's cache (Redis in production, shared by every web
process; the local-memory default is per process)."""

from __future__ import annotations

import time

from django.core.cache import cache

from labeling.errors import LabelingError


class Throttled(LabelingError):
    status_code = 429
    code = "throttled"


def rate_limit(key: str, limit: int, window_s: int, what: str) -> None:
    """Count one event under `key`; Throttled (429) when the window already holds `limit`."""
    window = int(time.time() // window_s)
    bucket = f"throttle:{key}:{window}"
    if cache.add(bucket, 1, timeout=window_s + 1):
        count = 1
    else:
        try:
            count = cache.incr(bucket)
        except ValueError:  # the window expired between add and incr: this is its first event
            cache.add(bucket, 1, timeout=window_s + 1)
            count = 1
    if count > limit:
        raise Throttled(f"too many {what}: at most {limit} per {window_s} s; try again later")
