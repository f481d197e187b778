"""Fixtures for the benchmark smoke runs: the test database's URL, for the parts that write
with psycopg or start child processes against the same data."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.fixture
def database_url(transactional_db) -> str:
    """The test database as a postgres:// URL. Committed rows (transactional_db) are what a
    second connection or a child process sees."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"
