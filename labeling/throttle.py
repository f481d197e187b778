"""Fixed-window rate limits in Django's cache (Redis in production, shared by every web
process; the local-memory default is per process).

They fail open: with the cache unreachable (Redis down) answers are still taken, unlimited,
because PostgreSQL, not Redis, is what an answer needs.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from labeling.errors import LabelingError

logger = logging.getLogger(__name__)


class Throttled(LabelingError):
    status_code = 429
    code = "throttled"


def rate_limit(key: str, limit: int, window_s: int, what: str) -> None:
    """Count one event under `key`; Throttled (429) when the window already holds `limit`."""
    try:
        count = _count(f"throttle:{key}:{int(time.time() // window_s)}", window_s)
    except Exception as exc:  # the cache backend's own connection errors
        logger.warning("rate limit %s not applied: cache unreachable: %s", key, exc)
        return
    if count > limit:
        raise Throttled(f"too many {what}: at most {limit} per {window_s} s; try again later")


def _count(bucket: str, window_s: int) -> int:
    if cache.add(bucket, 1, timeout=window_s + 1):
        return 1
    try:
        return cache.incr(bucket)
    except ValueError:  # the window expired between add and incr: this is its first event
        cache.add(bucket, 1, timeout=window_s + 1)
        return 1
