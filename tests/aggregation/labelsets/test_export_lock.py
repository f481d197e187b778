"""The numbering lock is held for the renames and the insert, not while the archive is written;
two exports racing still get consecutive numbers, each archive naming its own folder
(PostgreSQL, real concurrency)."""

from __future__ import annotations

import hashlib
import tarfile
import threading

import pytest
from django.db import connection, transaction

from aggregation.labelsets import artifact, services, storage
from aggregation.models import LabelSet

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

OPTIONS = services.ExportOptions(scenario="unstable")


def _numbering_lock_is_free() -> bool:
    """From another connection: can the numbering lock be taken right now?"""
    free = []

    def probe():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '100ms'")
                cursor.execute(f"LOCK TABLE {LabelSet._meta.db_table} "
                               "IN SHARE ROW EXCLUSIVE MODE NOWAIT")
            free.append(True)
        except Exception:  # LockNotAvailable: another transaction holds it
            free.append(False)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(60)
    return free == [True]


def test_the_archive_is_written_without_the_numbering_lock(labelled, monkeypatch):
    real_write_archive = artifact.write_archive
    lock_free_while_writing = []

    def watched(folder, archive, arcname):
        lock_free_while_writing.append(_numbering_lock_is_free())
        return real_write_archive(folder, archive, arcname)

    monkeypatch.setattr(artifact, "write_archive", watched)
    label_set = services.label_set_export(labelled.run.pk, OPTIONS)
    assert label_set.number == 1
    assert lock_free_while_writing == [True]


def _archive_members(label_set: LabelSet) -> set[str]:
    with tarfile.open(storage.archive_of(label_set.path)) as tar:
        return {name.split("/")[0] for name in tar.getnames()}


def test_an_export_that_loses_its_number_to_another_rewrites_its_archive(labelled, monkeypatch):
    real_write_archive = artifact.write_archive
    calls = []

    def other_export_commits_first(folder, archive, arcname):
        calls.append(arcname)
        if len(calls) == 1:  # the first export, outside the lock: another one takes number 1
            other = threading.Thread(target=_export_in_own_connection, args=(labelled.run.pk,))
            other.start()
            other.join(120)
        return real_write_archive(folder, archive, arcname)

    monkeypatch.setattr(artifact, "write_archive", other_export_commits_first)
    first = services.label_set_export(labelled.run.pk, OPTIONS)
    # The first export wrote for label-set-0001, lost it, and wrote again for 0002.
    assert calls == ["label-set-0001", "label-set-0001", "label-set-0002"]
    assert first.number == 2
    for label_set in LabelSet.objects.all():
        assert _archive_members(label_set) == {storage.folder_name(label_set.number)}
        archive = storage.archive_of(label_set.path).read_bytes()
        assert hashlib.sha256(archive).hexdigest() == label_set.archive_sha256
    assert sorted(LabelSet.objects.values_list("number", flat=True)) == [1, 2]


def _export_in_own_connection(run_id: int) -> None:
    try:
        services.label_set_export(run_id, OPTIONS)
    finally:
        connection.close()
