"""What an ingest may read: caps on sizes, and the folders a manifest may point into.

Inputs are untrusted. A few kilobytes of compressed data (a zip member, a gzipped FITS
cutout) or a forged array header can claim gigabytes, so every reader checks the declared
size and shape against these caps *before* it allocates or decompresses, and rejects the
input with the cap's name in the reason. The values come from settings
(INGEST_MAX_STAMP_SIDE, INGEST_MAX_DECOMPRESSED_BYTES, INGEST_ALLOWED_ROOTS); this module
only carries them, so it stays free of Django.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

# How much inflated output `check_inflated_size` holds at a time.
INFLATE_CHUNK = 2**20
# The caps' defaults (settings INGEST_MAX_STAMP_SIDE and INGEST_MAX_DECOMPRESSED_BYTES):
# real cutouts are 30 to 63 pixels a side.
DEFAULT_MAX_STAMP_SIDE = 512
DEFAULT_MAX_DECOMPRESSED_BYTES = 512 * 2**20


class LimitExceeded(ValueError):
    """An input (or one record of it) that declares more than a cap allows."""


@dataclass(frozen=True)
class IngestLimits:
    """`max_stamp_side`: the longest stamp axis in pixels (real cutouts are 30 to 63).
    `max_decompressed_bytes`: the most bytes one input may expand to in memory (an archive's
    members together, one decompressed cutout, one array).
    `allowed_roots`: folders, besides a manifest's own, that its stamp paths may lie in.
    """

    max_stamp_side: int = DEFAULT_MAX_STAMP_SIDE
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
    allowed_roots: tuple[Path, ...] = ()

    def check_shape(self, shape: tuple[int, ...], itemsize: int, label: str) -> None:
        """Raise LimitExceeded if an array of `shape` would break a cap (checked before reading).

        The last two axes are a stamp's rows and columns; any leading axis counts stamps.
        """
        if len(shape) >= 2 and max(shape[-2:]) > self.max_stamp_side:
            raise LimitExceeded(
                f"{label} stamps of {shape[-2]}x{shape[-1]} pixels exceed the "
                f"{self.max_stamp_side}-pixel cap (INGEST_MAX_STAMP_SIDE)"
            )
        count = 1
        for length in shape:
            count *= length
        self.check_bytes(count * itemsize, label)

    def check_bytes(self, size: int, label: str) -> None:
        if size > self.max_decompressed_bytes:
            raise LimitExceeded(
                f"{label} holds {size:,} bytes uncompressed, over the "
                f"{self.max_decompressed_bytes:,}-byte cap (INGEST_MAX_DECOMPRESSED_BYTES)"
            )

    def gunzip(self, data: bytes, label: str) -> bytes:
        """Decompress gzip `data`, stopping with LimitExceeded as soon as it passes the cap.

        Raises zlib.error or EOFError for corrupt or truncated gzip.
        """
        # wbits 16 + MAX_WBITS: a gzip header and trailer around the deflate stream.
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        output = decompressor.decompress(data, self.max_decompressed_bytes + 1)
        if len(output) > self.max_decompressed_bytes or decompressor.unconsumed_tail:
            raise LimitExceeded(
                f"{label} decompresses to more than the {self.max_decompressed_bytes:,}-byte "
                "cap (INGEST_MAX_DECOMPRESSED_BYTES)"
            )
        if not decompressor.eof:
            raise EOFError("gzip stream ends before its end marker (truncated)")
        return output

    def check_inflated_size(self, data: bytes, label: str) -> None:
        """LimitExceeded if raw deflate `data` (an Avro container block) inflates past the
        cap. The output is counted a chunk at a time and thrown away, so checking costs
        INFLATE_CHUNK bytes of memory, not the block's size. Raises zlib.error if corrupt;
        a stream that ends early just stops the count."""
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        pending, total = data, 0
        while not decompressor.eof:
            output = decompressor.decompress(pending, INFLATE_CHUNK)
            pending = decompressor.unconsumed_tail
            total += len(output)
            if total > self.max_decompressed_bytes:
                raise LimitExceeded(
                    f"{label} decompresses to more than the {self.max_decompressed_bytes:,}-"
                    "byte cap (INGEST_MAX_DECOMPRESSED_BYTES)"
                )
            if not output and not pending:
                return

    def resolve_inside(self, folder: Path, location: str, label: str) -> Path:
        """`location` (relative to `folder`, or absolute) if it resolves inside `folder` or an
        allowed root, symbolic links followed; LimitExceeded otherwise."""
        resolved = (folder / location).resolve()
        roots = (folder.resolve(), *(Path(root).resolve() for root in self.allowed_roots))
        if not any(resolved.is_relative_to(root) for root in roots):
            raise LimitExceeded(
                f"{label} lies outside the manifest's folder and INGEST_ALLOWED_ROOTS"
            )
        return resolved
