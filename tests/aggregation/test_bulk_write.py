"""A run's results written in bulk: PostgreSQL's binary COPY path stores exactly what the ORM
path (every other database) stores, and the binary COPY codec round-trips."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation import pgbinary, services
from aggregation.models import AggregationRun, SubjectPosterior
from aggregation.swap import BOGUS, REAL, UNKNOWN
from labeling import services as labeling_services

_FIELDS = ("subject_id", "p_real", "log_odds", "trajectory", "n_counted", "label", "stable")
unit_floats = st.floats(0.0, 1.0, allow_subnormal=True)
finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def swap_results(draw, subject_ids: list[int]):
    """A SwapResult's stored fields for a random subset of subjects: trajectories of every
    length (none included), tiny and extreme floats, every label."""
    chosen = sorted(draw(st.sets(st.sampled_from(subject_ids), min_size=1)))
    n = len(chosen)
    lengths = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.array(draw(st.lists(unit_floats, min_size=int(offsets[-1]),
                                    max_size=int(offsets[-1]))), dtype=np.float64)
    labels = st.lists(st.sampled_from([REAL, BOGUS, UNKNOWN]), min_size=n, max_size=n)
    return np.array(chosen, dtype=np.int64), types.SimpleNamespace(
        p_real=np.array(draw(st.lists(unit_floats, min_size=n, max_size=n))),
        log_odds=np.array(draw(st.lists(finite, min_size=n, max_size=n))),
        n_counted=np.array(draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n))),
        traj_offsets=offsets, traj_values=values,
        unstable_label=np.array(draw(labels), dtype=np.int8),
        stable_label=np.array(draw(labels), dtype=np.int8),
    )


def _new_run(workflow) -> AggregationRun:
    team = labeling_services.expert_team_get_or_create("rubin")
    reference = labeling_services.reference_set_get_or_create(name="rubin", team=team)
    return services.run_create(workflow=workflow, reference_sets=[reference])


def _stored(run) -> list[tuple]:
    return list(SubjectPosterior.objects.filter(run=run).order_by("subject_id")
                .values_list(*_FIELDS))


@pytest.mark.postgres
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_binary_copy_stores_what_the_orm_stores(workflow, subject_ids, data):
    ids, result = data.draw(swap_results(subject_ids))
    by_orm, by_copy = _new_run(workflow), _new_run(workflow)
    services._create_posteriors(by_orm, ids, result, None)
    progress = []
    services._copy_posteriors(by_copy, ids, result, progress.append)

    stored = _stored(by_copy)
    assert stored == _stored(by_orm)
    assert [row[0] for row in stored] == ids.tolist()
    assert [row[3] for row in stored] == [
        result.traj_values[a:b].tolist()
        for a, b in zip(result.traj_offsets[:-1], result.traj_offsets[1:], strict=True)
    ]
    assert sum(progress) == len(ids)


@pytest.mark.postgres
def test_a_subject_deleted_since_the_read_fails_the_write_and_stores_nothing(
    workflow, subject_ids
):
    from django.db import transaction

    run = _new_run(workflow)
    missing = max(subject_ids) + 1000
    ids = np.array([*subject_ids[:2], missing], dtype=np.int64)
    result = types.SimpleNamespace(
        p_real=np.full(3, 0.5), log_odds=np.zeros(3), n_counted=np.ones(3, np.int64),
        traj_offsets=np.array([0, 1, 2, 3]), traj_values=np.full(3, 0.5),
        unstable_label=np.full(3, UNKNOWN, np.int8), stable_label=np.full(3, UNKNOWN, np.int8),
    )
    with pytest.raises(RuntimeError, match="1 of the run's subjects were deleted"), \
            transaction.atomic():
        services._copy_posteriors(run, ids, result, None)
    assert not SubjectPosterior.objects.filter(run=run).exists()


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=30)
@given(
    st.lists(st.tuples(st.integers(-2**63, 2**63 - 1), finite, st.booleans()), max_size=200),
    st.integers(1, 64),
)
def test_binary_columns_decode_what_postgresql_sends(rows, piece):
    """Columns in COPY rows, as the classification reader asks for them, split into pieces
    at awkward places as a socket would deliver them."""
    from django.db import connection

    ints, floats, flags = (list(column) for column in zip(*rows, strict=True)) if rows else (
        [], [], [])
    with connection.cursor() as cursor:
        copy_sql = ("COPY (SELECT array_send(%s::int8[]), array_send(%s::float8[]),"
                    " array_send(%s::bool[])) TO STDOUT (FORMAT binary)")
        statement = cursor.cursor.mogrify(copy_sql, [ints, floats, flags])
        with cursor.cursor.copy(statement) as copy:
            stream = b"".join(bytes(message) for message in copy)
    pieces = [stream[i:i + piece] for i in range(0, len(stream), piece)]
    (row,) = list(pgbinary.decode_copy_rows(pieces))
    assert pgbinary.decode_array(row[0], "int8").tolist() == ints
    assert pgbinary.decode_array(row[1], "float8").tolist() == floats
    assert pgbinary.decode_array(row[2], "bool").tolist() == flags


def test_binary_decoder_refuses_what_it_did_not_ask_for():
    ints = b"".join(pgbinary.encode_blocks([("int4", np.array([1, 2]))]))
    with pytest.raises(pgbinary.BinaryFormatError, match="signature"):
        list(pgbinary.decode_copy_rows([b"x" * 40]))
    with pytest.raises(pgbinary.BinaryFormatError, match="truncated"):
        list(pgbinary.decode_copy_rows([ints[:-3]]))
    assert [[int.from_bytes(f, "big") for f in row]
            for row in pgbinary.decode_copy_rows([ints])] == [[1], [2]]
    array = bytes(12) + (2).to_bytes(4, "big") + bytes(4) + b"".join(
        (8).to_bytes(4, "big") + v.to_bytes(8, "big") for v in (5, 6))
    array = (1).to_bytes(4, "big") + array[4:]
    assert pgbinary.decode_array(array, "int8").tolist() == [5, 6]
    with pytest.raises(pgbinary.BinaryFormatError, match="cannot take"):
        pgbinary.decode_array(array, "int4")
    with pytest.raises(pgbinary.BinaryFormatError, match="NULLs"):
        pgbinary.decode_array(array[:4] + (1).to_bytes(4, "big") + array[8:], "int8")


@pytest.mark.postgres
@pytest.mark.parametrize("block_ids", [1, 3, 1_000_000])
def test_the_block_reader_reads_rows_in_server_time_then_id_order(
    workflow, subject_ids, monkeypatch, block_ids
):
    """Ties in server time, times out of id order, and rows spread over many blocks: the
    PostgreSQL reader returns what the ORM reader returns."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from aggregation import selectors

    monkeypatch.setattr(selectors, "_BLOCK_IDS", block_ids)
    start = timezone.now() - timedelta(days=1)
    rng = np.random.default_rng(5)
    for v in range(4):
        volunteer = labeling_services.volunteer_for_external_name(f"tie-{v}")
        for subject_id in subject_ids:
            labeling_services.classification_create(
                volunteer=volunteer, workflow_id=workflow.pk, subject_id=subject_id,
                answer="real" if rng.random() < 0.5 else "bogus", client_id=uuid.uuid4(),
                created_at=start + timedelta(seconds=int(rng.integers(0, 3))),
            )
    by_blocks = selectors._array_columns(workflow.pk, None)
    by_orm = selectors._iterator_columns(workflow.pk, None)
    assert len(by_blocks[0]) == len(by_orm[0]) > 0
    for a, b in zip(by_blocks, by_orm, strict=True):
        np.testing.assert_array_equal(a, b)
