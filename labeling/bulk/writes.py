"""Bulk writes, in the caller's transaction: ``COPY`` on PostgreSQL, batched
ORM statements on other databases (SQLite), with the same rows either way.

The columns a ``COPY`` writes are taken from the model: a field added later with a default is
written with its default instead of breaking the import, and one added without a default is a
clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice

from django.db import connection
from django.db.models import Field, Model

from labeling.bulk.replay import SubjectState
from labeling.models import SubjectWorkflowStatus

# Rows per COPY chunk (and per progress step); per ORM batch where COPY is not available.
COPY_CHUNK = 20_000
ORM_BATCH = 500


def uses_copy() -> bool:
    return connection.vendor == "postgresql"


def rows_write(
    model: type[Model],
    columns: Sequence[str],
    rows: Iterable[tuple],
    *,
    on_progress: Callable[[int], None] | None = None,
    copy: bool | None = None,
) -> None:
    """Insert rows of `model`, each a tuple of Python values for `columns` (field attnames),
    in order: serial ids follow it, as one-by-one inserts' would. Other fields get their
    defaults."""
    copy = uses_copy() if copy is None else copy
    iterator = iter(rows)
    if not copy:
        while batch := list(islice(iterator, ORM_BATCH)):
            model.objects.bulk_create(
                model(**dict(zip(columns, row, strict=True))) for row in batch
            )
            if on_progress:
                on_progress(len(batch))
        return
    names, defaults = _copy_columns(model, columns)
    # JSON values go through their field (psycopg's Jsonb); the rest COPY as they are.
    prepared = [(index, field) for index, field in enumerate(_fields(model, columns))
                if field.get_internal_type() == "JSONField"]
    statement = f"COPY {model._meta.db_table} ({', '.join(names)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as stream:
        while batch := list(islice(iterator, COPY_CHUNK)):
            for row in batch:
                if prepared:
                    row = list(row)
                    for index, field in prepared:
                        row[index] = field.get_db_prep_save(row[index], connection)
                    row = tuple(row)
                stream.write_row(row + defaults)
            if on_progress:
                on_progress(len(batch))


def _fields(model: type[Model], columns: Sequence[str]) -> list[Field]:
    fields = {field.attname: field for field in model._meta.concrete_fields}
    unknown = [name for name in columns if name not in fields]
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(unknown)}")
    return [fields[name] for name in columns]


def _copy_columns(model: type[Model], given: Sequence[str]) -> tuple[list[str], tuple]:
    """The column names of `given` and then of every other column, with those others'
    default values (prepared for the database)."""
    rest = [field for field in model._meta.concrete_fields
            if field.attname not in given and not field.primary_key]
    # Django itself writes "" into a text field without a default; others must have one.
    missing = [field.attname for field in rest if not field.has_default() and not field.null
               and not field.empty_strings_allowed]
    if missing:
        raise ValueError(f"the bulk writes do not fill {model.__name__}.{', '.join(missing)}, "
                         "which has no default")
    names = [connection.ops.quote_name(field.column) for field in _fields(model, given)]
    names += [connection.ops.quote_name(field.column) for field in rest]
    defaults = tuple(field.get_db_prep_save(field.get_default(), connection) for field in rest)
    return names, defaults


def statuses_update(
    workflow_id: int, states: dict[int, SubjectState], *, copy: bool | None = None
) -> None:
    """Set the retirement state of these subjects (by id) in the workflow."""
    if not states:
        return
    copy = uses_copy() if copy is None else copy
    table = SubjectWorkflowStatus._meta.db_table
    if not copy:
        # One statement, many parameter rows: bulk_update's CASE per row and field costs
        # far more to build than the update itself.
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET n_counted = %s, first_answer = %s, unanimous = %s, "
                "retired = %s, retired_at = %s WHERE workflow_id = %s AND subject_id = %s",
                [(*_values(state)[:4],
                  connection.ops.adapt_datetimefield_value(state.retired_at), workflow_id,
                  subject_id)
                 for subject_id, state in states.items()],
            )
        return
    subject_ids = list(states)
    values = [subject_ids, *map(list, zip(*map(_values, states.values()), strict=True))]
    # One statement for them all: the new values arrive as arrays, unnested side by side.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS status SET
                n_counted = new.n_counted, first_answer = new.first_answer,
                unanimous = new.unanimous, retired = new.retired, retired_at = new.retired_at
            FROM unnest(%s::bigint[], %s::integer[], %s::varchar[], %s::boolean[],
                        %s::boolean[], %s::timestamptz[])
                AS new(subject_id, n_counted, first_answer, unanimous, retired, retired_at)
            WHERE status.workflow_id = %s AND status.subject_id = new.subject_id
            """,
            [*values, workflow_id],
        )


def _values(state: SubjectState) -> tuple:
    """A state's (n_counted, first_answer, unanimous, retired, retired_at)."""
    retirement = state.retirement
    return (retirement.n_counted, retirement.first_answer, retirement.unanimous, state.retired,
            state.retired_at)
