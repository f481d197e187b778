"""The benchmark database: which one, recreating it empty, migrating it, and bulk writes.

Nothing is timed here. Every run starts from an empty database so that figures from two
runs compare; the database dropped is only ever one whose name ends in `_bench`.

The benchmarks write rows with COPY and INSERT ... SELECT, naming only the columns they
care about. Every other column gets what the ORM would give it (`column_defaults`), read
from the Django model, so a column added later with a default does not break them; one
added without a default fails with a message naming it (and the bench smoke tests in
tests/bench/ fail in CI).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.results import BenchError

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/realbogus_bench"
BENCH_SUFFIX = "_bench"
ROOT = Path(__file__).resolve().parent.parent


def bench_database_url() -> str:
    """DATABASE_URL if set (in the environment or .env), else the default; its database
    name always ends in `_bench`.

    The benchmark drops and recreates this database, so a DATABASE_URL naming the
    development database (`.../realbogus`, as the test instructions set it) must not be
    dropped: the benchmark uses `realbogus_bench` on the same server instead.
    """
    import environ

    # The checkout's .env, as the Django settings read it; the environment wins.
    if (ROOT / ".env").exists():
        environ.Env.read_env(ROOT / ".env", overwrite=False)
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchError(
            f"the benchmark needs PostgreSQL, but DATABASE_URL is {url!r}", exit_code=2
        )
    name = parts.path.lstrip("/") or "realbogus"
    if not name.endswith(BENCH_SUFFIX):
        name += BENCH_SUFFIX
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A psycopg connection, or a BenchError that says where PostgreSQL was expected."""
    try:
        return psycopg.connect(url, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        parts = urlsplit(url)
        raise BenchError(
            f"PostgreSQL is not reachable at {parts.hostname}:{parts.port or 5432} "
            f"({str(exc).strip()}).\nStart it, or set DATABASE_URL to a server you may "
            f"create databases on, e.g. {DEFAULT_URL}",
            exit_code=2,
        ) from None


def recreate(url: str) -> None:
    """Drop (disconnecting anything left from an interrupted run) and create the database."""
    name = database_name(url)
    if not name.endswith(BENCH_SUFFIX):
        raise BenchError(f"refusing to drop {name!r}: not a benchmark database")
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with connect(maintenance, autocommit=True) as conn:
        identifier = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(identifier))


def setup_django(url: str, media_root: str) -> None:
    """Point Django at the benchmark database and media folder, then run the migrations."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_MEDIA_ROOT"] = media_root
    os.environ["DJANGO_DEBUG"] = "false"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


class _Now:
    """The statement's time: `now()` in SQL, the moment of the call in COPY text."""


NOW = _Now()


def column_defaults(table: str, given: Iterable[str]) -> dict[str, object]:
    """What the ORM would store in each column of `table` not in `given`: the field's default
    (`NOW` for creation and modification times), NULL where the field allows it, "" for a
    blank text field. A column with none of these, or a unique one with a default (one
    value would collide), must be given: a BenchError says which."""
    from django.apps import apps
    from django.db import connection as django_connection
    from django.db.models import NOT_PROVIDED
    from django.utils import timezone

    models = [m for m in apps.get_models(include_auto_created=True) if m._meta.db_table == table]
    if not models:
        raise BenchError(f"no Django model has the table {table!r}")
    given = set(given)
    values: dict[str, object] = {}
    for field in models[0]._meta.concrete_fields:
        if field.column in given or field.primary_key or field.db_default is not NOT_PROVIDED:
            continue
        if (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
                or field.default is timezone.now):
            values[field.column] = NOW
        elif field.has_default() and not field.unique:
            values[field.column] = field.get_db_prep_save(field.get_default(),
                                                          django_connection)
        elif field.null:
            values[field.column] = None
        elif field.blank and field.empty_strings_allowed and not field.unique:
            values[field.column] = ""
        else:
            raise BenchError(
                f"the benchmark writes {table} without {field.column!r}, which has no default:"
                " give it in the benchmark's seeding"
            )
    return values


def _copy_text(value: object, now: str) -> str:
    """`value` in COPY's text format (benchmark values never hold tabs or newlines)."""
    if value is None:
        return "\\N"
    if value is NOW:
        return now
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if hasattr(value, "obj"):  # psycopg's Json/Jsonb wrapper of a JSONField default
        return json.dumps(value.obj)
    return str(value)


def copy_rows(
    conn: psycopg.Connection, table: str, columns: list[str], lines: Iterable[str]
) -> None:
    """COPY tab-separated text lines (each ending in a newline) into `table`.

    The values are generated by the benchmark and never hold tabs, newlines or backslashes,
    so they need no escaping; `\\N` is NULL. Columns not named get `column_defaults`.
    """
    defaults = column_defaults(table, columns)
    now = dt.datetime.now(dt.UTC).isoformat()
    suffix = "".join("\t" + _copy_text(value, now) for value in defaults.values()) + "\n"
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, [*columns, *defaults])),
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in lines:
            # A chunk holds one or more whole lines; each gets the defaults appended.
            copy.write(chunk.replace("\n", suffix) if defaults else chunk)


def insert_select(
    conn: psycopg.Connection, table: str, columns: dict[str, str], rest: str,
    params: dict[str, object] | None = None,
) -> None:
    """INSERT INTO `table` the rows of `SELECT <columns' expressions> <rest>`, where
    `columns` maps each column to its SQL expression and `rest` is the FROM clause and after
    (with %(name)s placeholders from `params`). Columns not named get `column_defaults`."""
    params = dict(params or {})
    expressions = dict(columns)
    for i, (column, value) in enumerate(column_defaults(table, columns).items()):
        if value is NOW:
            expressions[column] = "now()"
        else:
            params[f"_default_{i}"] = value
            expressions[column] = f"%(_default_{i})s"
    statement = (
        f"INSERT INTO {table} ({', '.join(expressions)}) "
        f"SELECT {', '.join(expressions.values())} {rest}"
    )
    conn.execute(statement, params)


def reserve_ids(conn: psycopg.Connection, table: str, n: int) -> int:
    """Advance `table`'s id sequence by `n` and return the first of the `n` ids reserved,
    so that rows COPied with explicit ids can be referenced before they exist."""
    row = conn.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
        "nextval(pg_get_serial_sequence(%s, 'id')) + %s - 1)",
        (table, table, n),
    ).fetchone()
    return row[0] - n + 1
