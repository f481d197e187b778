"""Building the bulk stamp stores (labeling.stamp_store) of subject sets: the writes.

A subject set's store holds the cubes of its subjects with stamps, in subject-id order, at
the set's stamp size (the most common one, should a set mix sizes; the others are read one
file at a time). A refresh reads only what changed since the last one, so it is cheap on a
current store and proportional to what was added on a stale one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from labeling import stamp_store
from labeling.models import Subject, SubjectSet
from labeling.selectors import stamp_sources, stamp_store_name


def stamp_stores_refresh(subject_set_ids: Iterable[int],
                         on_progress: Callable[[int], None] | None = None
                         ) -> dict[int, stamp_store.BuildReport]:
    """Bring the stores of these subject sets up to date with their per-subject files; a
    report per set refreshed. Sets kept in a storage without local files have no store."""
    reports = {}
    for set_id, project_id in SubjectSet.objects.filter(pk__in=list(subject_set_ids)
                                                        ).order_by("pk").values_list(
                                                            "pk", "project_id"):
        folder = stamp_sources([stamp_store_name(project_id, set_id)])
        if folder is None:
            return reports
        rows = list(Subject.objects.filter(subject_set_id=set_id).exclude(stamps="")
                    .order_by("pk").values_list("stamps", "stamp_size"))
        if not rows:
            continue
        size = Counter(stamp_size for _, stamp_size in rows).most_common(1)[0][0]
        names = [name for name, stamp_size in rows if stamp_size == size]
        # A name no store may serve (see stamp_sources) is left out: it is read on its own.
        sources = [source for source in stamp_sources(names) if source is not None]
        reports[set_id] = stamp_store.refresh_store(Path(folder[0].path), sources, size,
                                                    on_progress=on_progress)
    return reports
