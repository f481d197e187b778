"""PostgreSQL's binary formats with numpy: no Python object per row or per element.

Pure (numpy only, no Django, no database). `aggregation.services` writes a run's posteriors
as a binary COPY stream (`encode_blocks`); `aggregation.selectors` reads classifications as
whole columns, each an array in its binary form (`array_send`), and decodes them with
`decode_array`. Formats (PostgreSQL manual, "COPY", binary format, and array_send): a COPY
stream is a 19-byte header, then per row a 16-bit field count and, per field, a 32-bit byte
length and the value in network byte order, then a 16-bit -1. A one-dimensional array is a
header (dimensions, null flag, element type, length, lower bound) then, per element, a 32-bit
length and the value.

Reading columns rather than COPY rows matters: PostgreSQL sends COPY TO one message per row,
and a client pays for every message (psycopg: about 6 us, a minute at ten million rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + bytes(8)  # flags 0, header extension length 0
TRAILER = b"\xff\xff"
FLOAT8_OID = 701  # pg_type's oid of float8, the element type of a float8[] value

# The PostgreSQL types a fixed-width column can have, as big-endian numpy types; timestamptz
# is microseconds since 2000-01-01 UTC.
FIXED_TYPES = {"int8": ">i8", "int4": ">i4", "int2": ">i2", "float8": ">f8", "bool": "?",
               "timestamptz": ">i8"}
_ARRAY_HEADER = [("array_len", ">i4"), ("ndim", ">i4"), ("has_null", ">i4"),
                 ("element_oid", ">i4"), ("dim", ">i4"), ("lower_bound", ">i4")]
_ELEMENT = np.dtype([("len", ">i4"), ("value", ">f8")])
_BLOCK_ROWS = 100_000


class BinaryFormatError(RuntimeError):
    """The server sent something other than the values asked for."""


def _row_dtype(types: Sequence[str], with_array: bool) -> np.dtype:
    fields = [("n_fields", ">i2")]
    for k, pg_type in enumerate(types):
        fields += [(f"len{k}", ">i4"), (f"value{k}", FIXED_TYPES[pg_type])]
    return np.dtype(fields + (_ARRAY_HEADER if with_array else []))


def encode_blocks(
    columns: Sequence[tuple[str, np.ndarray]],
    array_offsets: np.ndarray | None = None,
    array_values: np.ndarray | None = None,
    *,
    block_rows: int = _BLOCK_ROWS,
) -> Iterator[bytes]:
    """A binary COPY stream, header to trailer, in blocks of `block_rows` rows.

    `columns` are (PostgreSQL type, values) pairs, one value per row; if `array_offsets` is
    given, each row ends with a float8[] column, row i's elements being
    `array_values[array_offsets[i]:array_offsets[i + 1]]` (CSR, like SWAP's trajectories).
    """
    types = [pg_type for pg_type, _ in columns]
    with_array = array_offsets is not None
    dtype = _row_dtype(types, with_array)
    n = len(columns[0][1]) if columns else len(array_offsets) - 1
    yield HEADER
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        fixed = np.zeros(stop - start, dtype=dtype)
        fixed["n_fields"] = len(types) + with_array
        for k, (pg_type, values) in enumerate(columns):
            fixed[f"len{k}"] = np.dtype(FIXED_TYPES[pg_type]).itemsize
            fixed[f"value{k}"] = values[start:stop]
        if not with_array:
            yield fixed.tobytes()
            continue
        lengths = np.diff(array_offsets[start : stop + 1])
        fixed["array_len"] = 20 + _ELEMENT.itemsize * lengths
        fixed["ndim"], fixed["element_oid"], fixed["lower_bound"] = 1, FLOAT8_OID, 1
        fixed["dim"] = lengths
        elements = np.empty(int(lengths.sum()), dtype=_ELEMENT)
        elements["len"] = 8
        elements["value"] = array_values[array_offsets[start] : array_offsets[stop]]
        yield _interleave(fixed, elements, lengths)
    yield TRAILER


def _interleave(fixed: np.ndarray, elements: np.ndarray, lengths: np.ndarray) -> bytes:
    """Row i's fixed part, then its `lengths[i]` elements, for every row, as one buffer.

    A mask marks where fixed parts go; assigning through it (and its negation) keeps the
    order of each source, so no per-row index is built. Both parts are moved in 4-byte words
    where their sizes allow, else in bytes."""
    unit = 4 if fixed.dtype.itemsize % 4 == 0 else 1
    word = np.uint32 if unit == 4 else np.uint8
    fixed_words = fixed.dtype.itemsize // unit
    element_words = _ELEMENT.itemsize // unit
    segments = np.empty(2 * len(fixed), dtype=np.int64)
    segments[0::2] = fixed_words
    segments[1::2] = element_words * lengths
    is_fixed = np.repeat(np.tile(np.array([True, False]), len(fixed)), segments)
    out = np.empty(len(is_fixed), dtype=word)
    out[is_fixed] = fixed.view(word).ravel()
    out[~is_fixed] = elements.view(word).ravel()
    return out.tobytes()


def decode_array(data: bytes, pg_type: str) -> np.ndarray:
    """A one-dimensional array without NULLs of `pg_type`, as `array_send` gives it."""
    ndim, has_null = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    native = np.dtype(FIXED_TYPES[pg_type]).newbyteorder("=")
    if ndim == 0:
        return np.empty(0, dtype=native)
    if ndim != 1 or has_null:
        raise BinaryFormatError(f"expected a one-dimensional array without NULLs, got {ndim} "
                                f"dimensions{' with NULLs' if has_null else ''}")
    n = int.from_bytes(data[12:16], "big")
    element = np.dtype([("len", ">i4"), ("value", FIXED_TYPES[pg_type])])
    if len(data) != 20 + n * element.itemsize:
        raise BinaryFormatError(f"an array of {n} {pg_type} cannot take {len(data)} bytes")
    elements = np.frombuffer(data, dtype=element, offset=20, count=n)
    if not (elements["len"] == element["value"].itemsize).all():
        raise BinaryFormatError(f"elements of another size than {pg_type}'s")
    return elements["value"].astype(native)


def decode_copy_rows(messages: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The rows of a binary COPY stream, each as its fields' bytes (no NULLs expected).

    Meant for few, large rows (a block of rows aggregated into arrays): the per-row work
    here is Python's."""
    buffer = bytearray()
    position = 0
    header_done = False
    for message in messages:
        buffer += message
        if not header_done:
            if len(buffer) < len(HEADER):
                continue
            if not buffer.startswith(SIGNATURE):
                raise BinaryFormatError("unexpected COPY stream: bad signature")
            position = len(HEADER) + int.from_bytes(buffer[15:19], "big")
            header_done = True
        while True:
            row, end = _next_row(buffer, position)
            if row is None:
                break
            yield row
            position = end
        # Drop what was read, so the buffer holds at most one partial row.
        del buffer[:position]
        position = 0
    if not header_done or bytes(buffer[position:]) != TRAILER:
        raise BinaryFormatError("unexpected COPY stream: truncated")


def _next_row(buffer: bytearray, position: int) -> tuple[list[bytes] | None, int]:
    """The row starting at `position` and where it ends, or (None, position) if the buffer
    does not hold all of it yet (or holds the trailer)."""
    if len(buffer) < position + 2 or buffer[position:position + 2] == TRAILER:
        return None, position
    n_fields = int.from_bytes(buffer[position:position + 2], "big")
    at = position + 2
    fields = []
    for _ in range(n_fields):
        if len(buffer) < at + 4:
            return None, position
        length = int.from_bytes(buffer[at:at + 4], "big", signed=True)
        if length < 0:
            raise BinaryFormatError("unexpected NULL in a COPY row")
        if len(buffer) < at + 4 + length:
            return None, position
        fields.append(bytes(buffer[at + 4:at + 4 + length]))
        at += 4 + length
    return fields, at
