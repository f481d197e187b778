"""SQL statements one API request costs, counted in-process with Django's test client.

On a 2-core machine the ORM's per-statement Python work and round trip are a large part of
a request's cost, so the count explains the throughput figures and catches a view that
starts issuing more queries. (The connection health check's `SELECT 1`, run once per
request by CONN_HEALTH_CHECKS on the raw connection, is not in the count.)
"""

from __future__ import annotations

import json

from bench.results import BenchError


def count_queries(
    path: str, token: str, *, expect: int, data: dict | None = None
) -> tuple[int, dict]:
    """Run one GET (or POST of `data` as JSON) as the token's user; return the number of
    SQL statements and the decoded answer."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    with CaptureQueriesContext(connection) as queries:
        if data is None:
            response = client.get(path)
        else:
            response = client.post(path, json.dumps(data), content_type="application/json")
    if response.status_code != expect:
        raise BenchError(
            f"{path}: expected {expect}, got {response.status_code}: {response.content[:300]!r}"
        )
    return len(queries), response.json()
