"""The ML team's download client (training.ml.download, urllib only) against a live server:
a fresh download, a resumed one, and a corrupt partial file."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from aggregation.labelsets import services, storage
from training.ml.dataset import LabelSetDataset
from training.ml.download import DownloadError, download_label_set

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def label_set(labelled):
    return services.label_set_export(labelled.run.pk, services.ExportOptions(scenario="unstable"))


@pytest.fixture
def token(make_user) -> str:
    return Token.objects.create(user=make_user("ml", ml=True)).key


def _same_files(downloaded, label_set) -> None:
    exported = storage.folder_of(label_set.path)
    names = sorted(p.name for p in exported.iterdir())
    assert sorted(p.name for p in downloaded.iterdir()) == names
    for name in names:
        assert (downloaded / name).read_bytes() == (exported / name).read_bytes(), name


def test_a_download_is_unpacked_verified_and_loads(live_server, label_set, token, tmp_path):
    result = download_label_set(live_server.url, label_set.number, token, tmp_path / "data")
    assert result.resumed_from == 0
    assert result.received == label_set.archive_size
    _same_files(result.folder, label_set)
    train = LabelSetDataset(result.folder, "train")
    assert len(train) == label_set.manifest["counts"]["train"]["total"]
    assert not list((tmp_path / "data").glob("*.part"))


def test_an_interrupted_download_resumes_where_it_stopped(live_server, label_set, token,
                                                          tmp_path):
    destination = tmp_path / "data"
    destination.mkdir()
    have = label_set.archive_size // 3
    archive = storage.archive_of(label_set.path).read_bytes()
    part = destination / f"{storage.folder_name(label_set.number)}.tar.part"
    part.write_bytes(archive[:have])
    result = download_label_set(live_server.url, label_set.number, token, destination)
    assert result.resumed_from == have
    assert result.received == label_set.archive_size - have
    _same_files(result.folder, label_set)


def test_a_corrupt_partial_file_is_deleted_and_the_next_try_succeeds(live_server, label_set,
                                                                     token, tmp_path):
    destination = tmp_path / "data"
    destination.mkdir()
    part = destination / f"{storage.folder_name(label_set.number)}.tar.part"
    part.write_bytes(b"\0" * 1000)
    with pytest.raises(DownloadError, match="sha256"):
        download_label_set(live_server.url, label_set.number, token, destination)
    assert not part.exists()
    result = download_label_set(live_server.url, label_set.number, token, destination)
    _same_files(result.folder, label_set)
