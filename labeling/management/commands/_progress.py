"""Progress bars for long commands: on stderr, so summaries on stdout stay clean to parse."""

import sys

from tqdm import tqdm


def progress_bar(total: int | None, unit: str, desc: str) -> tqdm:
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                disable=None)
