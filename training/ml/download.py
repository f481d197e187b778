"""Download a label set from the platform, resuming a partial download, and check it.

Standard library only (urllib, tarfile, hashlib), so it runs wherever the ML team trains:

    result = download_label_set("https://realbogus.example", 3, token, "data")
    train = LabelSetDataset(result.folder, "train", flips=True)

A download interrupted half-way leaves `label-set-0003.tar.part`; the next call asks only for
the missing bytes (`Range`, guarded by `If-Range` with the archive's sha256 as ETag). The whole
archive is checked against that sha256 before it is unpacked, and every unpacked file against
the manifest; a mismatch deletes what was downloaded and raises.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aggregation.labelsets.artifact import MANIFEST, file_digest
from training.ml.dataset import verify

CHUNK_BYTES = 1024 * 1024
TIMEOUT_S = 60


class DownloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Download:
    folder: Path
    resumed_from: int  # bytes already on disk from an earlier, interrupted download
    received: int  # bytes this call transferred


def download_label_set(base_url: str, number: int, token: str, destination: str | Path,
                       *, chunk_bytes: int = CHUNK_BYTES) -> Download:
    """Label set `number` unpacked and verified in `destination/label-set-NNNN/`."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    api = f"{base_url.rstrip('/')}/api/label-sets/{number}/"
    headers = {"Authorization": f"Token {token}"}
    with urllib.request.urlopen(_request(api, headers), timeout=TIMEOUT_S) as reply:
        described = json.load(reply)
    sha256, size = described["archive_sha256"], described["archive_size"]
    folder = destination / f"label-set-{number:04d}"
    if folder.is_dir() and not verify(folder):
        return Download(folder, resumed_from=0, received=0)

    part = destination / f"label-set-{number:04d}.tar.part"
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        have = 0
    received = 0
    if have < size:
        if have:
            headers |= {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'}
        with urllib.request.urlopen(_request(f"{api}download/", headers),
                                    timeout=TIMEOUT_S) as reply:
            if reply.status != 206 or not _starts_at(reply.headers, have):
                have = 0  # the server sent the whole archive: start again
            with open(part, "ab" if have else "wb") as out:
                while chunk := reply.read(chunk_bytes):
                    out.write(chunk)
                    received += len(chunk)
    if file_digest(part)["sha256"] != sha256:
        part.unlink()
        raise DownloadError(f"label set {number}: the archive's sha256 is not {sha256}; "
                            "the partial download was deleted, try again")
    _unpack(part, folder)
    part.unlink()
    problems = verify(folder)
    if problems:
        shutil.rmtree(folder)
        raise DownloadError(f"label set {number}: " + "; ".join(problems))
    return Download(folder, resumed_from=have, received=received)


def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
    return urllib.request.Request(url, headers=headers)


def _starts_at(headers, offset: int) -> bool:
    return headers.get("Content-Range", "").startswith(f"bytes {offset}-")


def _unpack(archive: Path, folder: Path) -> None:
    """Untar next to `folder` (the archive holds one directory of the same name), then move
    it into place, so a failed unpack never leaves a half-filled `folder`."""
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".unpack-") as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        unpacked = Path(scratch) / folder.name
        if not (unpacked / MANIFEST).is_file():
            raise DownloadError(f"{archive.name} holds no {folder.name}/{MANIFEST}")
        if folder.exists():
            shutil.rmtree(folder)
        unpacked.rename(folder)
