"""``harkit data download``: fetch UCF101, HMDB51 or UCF50 from their official sources,
verify, and extract them into the layout the ``ucf101`` / ``hmdb51`` / ``ucf50`` kinds read.

This module knows the datasets (:data:`SOURCES`) and runs the steps for one ROOT, under its
lock: take each archive from ``--from DIR``, an earlier download or the network
(:mod:`harkit.data.fetch`: resumable, size- and checksum-checked), record it in
``ROOT/harkit-download.json``, and extract it safely into place (:mod:`harkit.data.archives`).
The dataset owners publish no checksums; the MD5s below are the values the community checks
against (quoted where noted). Where none is known, the SHA-256 of the first download is
recorded and every later use of the file is checked against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harkit.data.archives import MARKER, ExtractBudget, ExtractLimits, extract_into
from harkit.data.fetch import (
    STATE_FILE,
    DownloadError,
    fetch,
    read_state,
    root_lock,
    verify_file,
    write_state,
)

__all__ = [
    "DOWNLOADS",
    "SOURCES",
    "DatasetSource",
    "DownloadResult",
    "RemoteFile",
    "download_dataset",
]

DOWNLOADS = "downloads"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from and what it must be."""

    name: str
    """File name on disk (and what ``--from DIR`` looks for)."""
    urls: tuple[str, ...]
    """The documented source first, then known mirrors of the same file."""
    target: str
    """Folder under ROOT the archive's content ends in."""
    md5: str | None = None
    size: int | None = None
    nested: bool = False
    """The archive holds one archive per class (HMDB51), each extracted in turn."""


@dataclass(frozen=True)
class DatasetSource:
    name: str
    kind: str
    videos: RemoteFile
    splits: RemoteFile | None = None
    page: str = ""

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        return (self.videos,) if self.splits is None else (self.videos, self.splits)


# The documented sources (dataset pages: https://www.crcv.ucf.edu/data/UCF101.php,
# https://www.crcv.ucf.edu/data/UCF50.php, https://serre-lab.clps.brown.edu/resource/
# hmdb-a-large-human-motion-database/). Neither lab publishes checksums. The UCF101 MD5s are
# the values public download code verifies these exact URLs against (torchvision-style
# ``download_and_extract_archive(..., md5=...)``); the other files get their SHA-256 recorded
# on first download.
SOURCES: dict[str, DatasetSource] = {
    "ucf101": DatasetSource(
        "ucf101",
        "ucf101",
        RemoteFile(
            "UCF101.rar",
            (
                "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
                "https://www.crcv.ucf.edu/datasets/human-actions/ucf101/UCF101.rar",
            ),
            target="UCF-101",
            md5="6463accf4bbc20fa6418ab7f159e6149",
        ),
        RemoteFile(
            "UCF101TrainTestSplits-RecognitionTask.zip",
            (
                "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
                "https://www.crcv.ucf.edu/wp-content/uploads/2019/03/"
                "UCF101TrainTestSplits-RecognitionTask.zip",
            ),
            target="ucfTrainTestlist",
            md5="4426308e815a5108ba976f4a2bb47c5e",
        ),
        page="https://www.crcv.ucf.edu/data/UCF101.php",
    ),
    "hmdb51": DatasetSource(
        "hmdb51",
        "hmdb51",
        RemoteFile(
            "hmdb51_org.rar",
            ("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",),
            target="hmdb51_org",
            nested=True,
        ),
        RemoteFile(
            "test_train_splits.rar",
            ("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",),
            target="testTrainMulti_7030_splits",
        ),
        page="https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/",
    ),
    "ucf50": DatasetSource(
        "ucf50",
        "ucf50",
        RemoteFile(
            "UCF50.rar",
            ("https://www.crcv.ucf.edu/data/UCF50.rar",),
            target="UCF50",
            size=3_233_554_570,  # the size public resume scripts wait for
        ),
        page="https://www.crcv.ucf.edu/data/UCF50.php",
    ),
}


@dataclass
class DownloadResult:
    """Where the dataset ended up and how to read it."""

    name: str
    kind: str
    root: Path
    videos: Path
    annotations: Path | None
    files: dict[str, dict[str, object]] = field(default_factory=dict)


def _by_hand(source: DatasetSource, root: Path) -> str:
    urls = " and ".join(f.urls[0] for f in source.files)
    return (
        f"fetch {urls} by hand (page: {source.page}) and put them in {root / DOWNLOADS} and "
        f"run this again, or in any folder DIR and run "
        f"'harkit data download {source.name} {root} --from DIR'"
    )


def download_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    from_dir: str | os.PathLike[str] | None = None,
    sources: Mapping[str, DatasetSource] | None = None,
    limits: ExtractLimits | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DownloadResult:
    """Fetch (or take from ``from_dir``), verify and extract benchmark ``name`` under ``root``.

    ``sources`` replaces the table of official URLs (:data:`SOURCES`), e.g. to use a mirror.
    Re-running is cheap: finished downloads are verified, not fetched again, and parts
    already extracted are kept.
    """
    table = SOURCES if sources is None else sources
    if name not in table:
        raise DownloadError(f"unknown dataset '{name}'; expected one of {', '.join(table)}")
    source = table[name]
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DownloadError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with root_lock(root):  # two downloads into one ROOT would corrupt each other
        state = read_state(root)
        if state.get("dataset") not in (None, name):
            raise DownloadError(
                f"{root}: holds '{state['dataset']}' (see {STATE_FILE}); choose another folder"
            )
        state["dataset"] = name
        records: dict = state.setdefault("files", {})
        local = Path(from_dir) if from_dir is not None else None
        if local is not None and not local.is_dir():
            raise DownloadError(f"--from {local}: folder not found")
        budget = ExtractBudget(limits or ExtractLimits())

        finals: dict[str, Path] = {}
        for file in source.files:
            final = root / file.target
            record = records.get(file.name, {})
            if (final / MARKER).is_file():
                log(f"{final}: already extracted")
                records[file.name] = {**record, "extracted": True}
                finals[file.name] = final
                continue
            if final.exists() or final.is_symlink():
                raise DownloadError(
                    f"{final}: exists but was not extracted by harkit (no {MARKER}); move it "
                    "away or choose another ROOT"
                )
            path = _locate(file, root, local, source, retries, timeout, progress, log)
            entry = verify_file(
                path, record, size=file.size, md5=file.md5, progress=progress, owned=local is None
            )
            records[file.name] = {**record, **entry, "url": file.urls[0], "extracted": False}
            write_state(root, state)
            marker = {"archive": file.name, "sha256": entry["sha256"], "target": file.target}
            finals[file.name] = extract_into(
                path, final, budget=budget, nested=file.nested, marker=marker, log=log
            )
            records[file.name]["extracted"] = True
            write_state(root, state)

        videos = finals[source.videos.name]
        annotations = finals.get(source.splits.name) if source.splits else None
        return DownloadResult(name, source.kind, root, videos, annotations, records)


def _locate(
    file: RemoteFile,
    root: Path,
    local: Path | None,
    source: DatasetSource,
    retries: int,
    timeout: float,
    progress: bool,
    log: Callable[[str], None],
) -> Path:
    """The archive on disk: from ``--from``, an earlier download, or fetched now."""
    if local is not None:
        path = local / file.name
        if not path.is_file():
            raise DownloadError(
                f"--from {local}: {file.name} not found; fetch {file.urls[0]} into that folder"
            )
        log(f"using {path}")
        return path
    path = root / DOWNLOADS / file.name
    if path.is_file():
        log(f"using the earlier download {path}")
        return path
    host = urlsplit(file.urls[0]).netloc
    log(f"downloading {file.name} from {host}")
    try:
        return fetch(
            file.urls, path, size=file.size, retries=retries, timeout=timeout, progress=progress
        )
    except DownloadError as exc:
        part = path.with_name(path.name + ".part")
        if part.exists() and part.stat().st_size:
            raise  # a partial transfer: running again resumes it
        raise DownloadError(f"{exc}; {_by_hand(source, root)}") from None
