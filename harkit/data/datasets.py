"""Dataset indexes: which videos exist, their labels, groups and official splits.

An index lists :class:`VideoItem` rows and a stable class list; it never decodes video (the
clip dataset does). Builders exist for UCF101, HMDB51 and UCF50 with their official
protocols, a generic ``root/<class>/<video>`` folder and a CSV manifest
``path,label[,split[,group]]``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import PositiveInt, confloat, conint

from harkit.config import StrictModel
from harkit.data.video import FRAME_EXTENSIONS
from harkit.errors import HarkitError
from harkit.io import atomic_write_text

__all__ = [
    "GROUP_COLUMNS",
    "OFFICIAL_SPLITS",
    "VIDEO_EXTENSIONS",
    "DatasetConfig",
    "DatasetError",
    "VideoIndex",
    "VideoItem",
    "csv_index",
    "folder_index",
    "hmdb51_index",
    "leave_one_group_out",
    "list_videos",
    "load_classes",
    "load_index",
    "parse_group",
    "resolve_kind",
    "ucf50_index",
    "ucf101_index",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (
    ".avi",
    ".mp4",
    ".mkv",
    ".webm",
    ".mov",
    ".mpg",
    ".mpeg",
    ".m4v",
    ".wmv",
    ".ts",
    ".flv",
    ".3gp",
)
# UCF101/UCF50 name clips v_<Class>_g<group>_c<clip>; the synthetic set uses <class>_a<actor>_c<clip>.
_GROUP_PATTERNS = (re.compile(r"_(g\d+)_c\d+", re.IGNORECASE), re.compile(r"_(a\d+)_c\d+"))
#: Manifest columns read as the group (whose clips must stay on one side of a split), in
#: order of preference, compared case-insensitively; ``--group-column`` names any other.
GROUP_COLUMNS = ("group", "actor", "person", "subject", "performer")


class DatasetError(HarkitError):
    """A dataset folder, split file or manifest is missing or malformed."""


@dataclass(frozen=True)
class VideoItem:
    """One video (file or frame folder) with its label and, where known, group and split."""

    path: Path
    label: str
    group: str | None = None
    split: str | None = None


@dataclass
class VideoIndex:
    """Items plus the class list that fixes each label's integer index.

    ``group_column`` is the manifest column groups came from (None: parsed from clip names);
    ``ignored_columns`` are manifest columns harkit did not use, so ``data inspect`` can say so.
    """

    name: str
    items: list[VideoItem]
    classes: list[str]
    group_column: str | None = None
    ignored_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        known = set(self.classes)
        unknown = sorted({item.label for item in self.items} - known)
        if unknown:
            raise DatasetError(f"{self.name}: labels not in the class list: {unknown[:10]}")
        self._class_to_index = {label: i for i, label in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[VideoItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> VideoItem:
        return self.items[i]

    def class_index(self, label: str) -> int:
        return self._class_to_index[label]

    @property
    def targets(self) -> list[int]:
        return [self._class_to_index[item.label] for item in self.items]

    @property
    def groups(self) -> list[str | None]:
        return [item.group for item in self.items]

    def subset(self, split: str) -> VideoIndex:
        """The items of one split (``train``/``test``/``val``), same class list."""
        return self.select(item for item in self.items if item.split == split)

    def select(self, items: Iterable[VideoItem]) -> VideoIndex:
        return VideoIndex(
            self.name,
            list(items),
            list(self.classes),
            self.group_column,
            list(self.ignored_columns),
        )

    def with_splits(self, splits: Iterable[str]) -> VideoIndex:
        return self.select(replace(it, split=s) for it, s in zip(self.items, splits, strict=True))

    def class_counts(self) -> dict[str, int]:
        counts = Counter(item.label for item in self.items)
        return {label: counts.get(label, 0) for label in self.classes}

    def save_classes(self, path: str | Path) -> Path:
        """Write the class list (index order) as JSON, atomically."""
        return atomic_write_text(path, json.dumps(self.classes, indent=1) + "\n")


def load_classes(path: str | Path) -> list[str]:
    """Read a class list written by :meth:`VideoIndex.save_classes`."""
    path = Path(path)
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read class list ({exc})") from exc
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f"{path}: expected a JSON list of class names")
    return classes


def parse_group(name: str) -> str | None:
    """Group id from a clip name (``v_Diving_g05_c02`` -> ``g05``, ``x_a03_c01`` -> ``a03``)."""
    for pattern in _GROUP_PATTERNS:
        match = pattern.search(name)
        if match:
            return match.group(1).lower()
    return None


_LINES: dict[tuple[str, int, int, int, int], list[str]] = {}
"""Split files read, by path, inode, size, mtime_ns and ctime_ns: ``reproduce`` reads each
split's files in several steps (extraction, training, evaluation); an edited file is read
again."""


def _read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines; tolerates CRLF (the UCF101 files use it) and a BOM."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: split file not found")
    key = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _LINES:
        text = path.read_text(encoding="utf-8-sig")
        if len(_LINES) >= 32:
            _LINES.clear()
        _LINES[key] = [line.strip() for line in text.splitlines() if line.strip()]
    return list(_LINES[key])


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """Visible entries of ``folder`` by name; raises ``OSError`` if it cannot be listed."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def _kind(entry: os.DirEntry[str]) -> Literal["video", "folder", "other"]:
    """What a folder entry is to discovery, decided without opening anything but folders.

    Anything named like a video is a video whatever its file type: the reader refuses a
    FIFO, socket, device, broken link or a folder without frames with the reason, so each
    verb reports it instead of silently losing it (or blocking on the open). A folder that
    holds frame images, or that cannot be listed (it may, and then the reader says why), is
    a video too.
    """
    if Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS:
        return "video"
    try:
        if not entry.is_dir():  # follows links; no open, so FIFOs cannot block here
            return "other"
        with os.scandir(entry.path) as inner:
            has_frames = any(Path(e.name).suffix.lower() in FRAME_EXTENSIONS for e in inner)
    except OSError:
        return "video"
    return "video" if has_frames else "folder"


def list_videos(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The videos in ``folder`` (files, frame folders, see :func:`_kind`), sorted by name;
    ``recursive`` also searches the other sub-folders (symlinked ones are not followed).

    Raises ``OSError`` when ``folder`` itself cannot be listed. Sub-folders that cannot be
    listed are returned as videos, so the reader reports them.
    """
    out: list[Path] = []
    for entry in _entries(Path(folder)):
        kind = _kind(entry)
        if kind == "video":
            out.append(Path(entry.path))
        elif kind == "folder" and recursive and not entry.is_symlink():
            out.extend(list_videos(entry.path, recursive=True))
    return out


def ucf101_index(
    root: str | Path, split: int = 1, annotations: str | Path | None = None
) -> VideoIndex:
    """UCF101 with official split ``split`` (1-3); classes in ``classInd.txt`` order.

    ``annotations`` is the ``ucfTrainTestlist`` folder (default: ``root/ucfTrainTestlist``, or
    beside ``root`` where ``harkit data download`` puts it).
    A ``.avi`` path whose file is absent but whose frame folder (same name, no suffix) exists
    resolves to the folder, so the pre-extracted ``jpegs_256`` layout works unchanged.
    """
    if split not in (1, 2, 3):
        raise DatasetError(f"UCF101 has official splits 1, 2, 3; got split={split}")
    root = Path(root)
    ann = Path(annotations) if annotations else root / "ucfTrainTestlist"
    if annotations is None and not ann.is_dir() and (root.parent / ann.name).is_dir():
        ann = root.parent / ann.name
    class_file = ann / "classInd.txt"
    classes: list[str] = []
    for n, line in enumerate(_read_lines(class_file), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != n:
            raise DatasetError(f"{class_file}:{n}: expected '<{n}> <ClassName>', got {line!r}")
        classes.append(parts[1])

    items: list[VideoItem] = []
    known = set(classes)
    for split_name, file in (
        ("train", f"trainlist0{split}.txt"),
        ("test", f"testlist0{split}.txt"),
    ):
        list_file = ann / file
        for n, line in enumerate(_read_lines(list_file), 1):
            parts = line.split()
            rel = parts[0]
            label = rel.split("/")[0]
            if label not in known:
                raise DatasetError(
                    f"{list_file}:{n}: class folder '{label}' is not in classInd.txt"
                )
            if len(parts) > 1:
                class_id = int(parts[1])  # 1-based in classInd.txt
                if not 1 <= class_id <= len(classes) or classes[class_id - 1] != label:
                    raise DatasetError(
                        f"{list_file}:{n}: class id {class_id} does not match folder '{label}'"
                    )
            # plain strings, one stat: 13,320 lines, every command (pathlib cost 1 s here)
            path = os.path.join(root, rel)
            stem, suffix = os.path.splitext(path)
            if suffix and not os.path.exists(path) and os.path.isdir(stem):
                path = stem
            name = os.path.basename(rel.rstrip("/"))
            items.append(
                VideoItem(Path(path), label, parse_group(os.path.splitext(name)[0]), split_name)
            )
    return VideoIndex(f"ucf101-split{split}", items, classes)


def hmdb51_index(root: str | Path, annotations: str | Path, split: int = 1) -> VideoIndex:
    """HMDB51 with official split ``split`` (1-3) from ``<class>_test_split<k>.txt`` files.

    Lines read ``<video>.avi <0|1|2>``: 1 train, 2 test, 0 unused (left out).
    """
    if split not in (1, 2, 3):
        raise DatasetError(f"HMDB51 has official splits 1, 2, 3; got split={split}")
    root, ann = Path(root), Path(annotations)
    files = sorted(ann.glob(f"*_test_split{split}.txt"))
    if not files:
        raise DatasetError(f"{ann}: no '<class>_test_split{split}.txt' files found")
    classes = [f.name[: -len(f"_test_split{split}.txt")] for f in files]
    items = []
    for label, file in zip(classes, files, strict=True):
        for n, line in enumerate(_read_lines(file), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{file}:{n}: expected '<video>.avi <0|1|2>', got {line!r}")
            if parts[1] == "0":
                continue
            split_name = "train" if parts[1] == "1" else "test"
            items.append(VideoItem(root / label / parts[0], label, None, split_name))
    return VideoIndex(f"hmdb51-split{split}", items, classes)


def _check_listed_videos(
    index: VideoIndex,
    root: Path,
    annotations: str | Path,
    benchmark: str,
    allow_missing: bool = False,
) -> VideoIndex:
    """Refuse a root that holds none of the videos the split files list (the split files of
    a benchmark given for some other folder), or only some of them unless ``allow_missing``,
    which keeps the present ones (one warning with the count). A video is present as its
    file or its frame folder (same name, no suffix)."""
    missing = [
        item
        for item in index
        if not os.path.exists(item.path) and not item.path.with_suffix("").is_dir()
    ]
    if not missing:
        return index
    if len(missing) == len(index):
        first = missing[0].path
        example = first.relative_to(root) if first.is_relative_to(root) else first
        raise DatasetError(
            f"{root} holds none of the {len(index)} videos that {annotations} lists "
            f"(e.g. {example}); pass the {benchmark} video folder as the dataset"
        )
    if not allow_missing:
        examples = ", ".join(
            str(m.path.relative_to(root) if m.path.is_relative_to(root) else m.path)
            for m in missing[:3]
        )
        raise DatasetError(
            f"{len(missing)} of the {len(index)} videos that {annotations} lists are not under "
            f"{root} (e.g. {examples}); complete the folder, or pass --allow-missing (Python: "
            f"allow_missing=True) to use the {len(index) - len(missing)} present"
        )
    log.warning(
        "%s: %d of the %d videos that %s lists are not under %s: using the %d present",
        index.name,
        len(missing),
        len(index),
        annotations,
        root,
        len(index) - len(missing),
    )
    gone = {id(item) for item in missing}
    return index.select([item for item in index if id(item) not in gone])


def folder_index(root: str | Path, name: str | None = None) -> VideoIndex:
    """Any ``root/<class>/<video>`` tree (videos or frame folders); classes sorted by name."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(
            f"{root}: a file, not a dataset; expected a folder of <class>/<video> or a CSV "
            "manifest (.csv)"
        )
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    try:
        class_dirs = [Path(e.path) for e in _entries(root) if e.is_dir()]
    except OSError as exc:
        raise DatasetError(f"{root}: cannot list the dataset folder ({exc.strerror})") from None
    items: list[VideoItem] = []
    for class_dir in class_dirs:
        try:
            videos = list_videos(class_dir)
        except OSError:
            # An unreadable class folder stays in the index as one item: every job then
            # skips and reports it (the reader says why), and the class list keeps its order.
            videos = [class_dir]
        items += [VideoItem(v, class_dir.name, parse_group(v.stem)) for v in videos]
    classes = sorted({item.label for item in items})
    if not items:
        raise DatasetError(f"{root}: no videos found under <class>/ folders")
    return VideoIndex(name or root.name, items, classes)


def ucf50_index(root: str | Path) -> VideoIndex:
    """UCF50 as a folder tree; groups ``gXX`` drive leave-one-group-out (see ``splits``)."""
    index = folder_index(root, name="ucf50")
    missing = [str(item.path) for item in index if item.group is None][:5]
    if missing:
        raise DatasetError(f"UCF50 clip names must contain _gXX_cYY; not found in {missing}")
    return index


def _group_column(path: Path, columns: dict[str, str], wanted: str | None) -> str | None:
    """The header name of the group column: ``wanted`` (must exist), else the first of
    :data:`GROUP_COLUMNS` present; column names compare case-insensitively."""
    if wanted is not None:
        found = columns.get(wanted.strip().lower())
        if found is None:
            raise DatasetError(
                f"{path}: no column '{wanted}' for --group-column; the columns are "
                f"{', '.join(columns.values())}"
            )
        return found
    return next((columns[name] for name in GROUP_COLUMNS if name in columns), None)


def csv_index(path: str | Path, group_column: str | None = None) -> VideoIndex:
    """A CSV manifest ``path,label[,split[,group]]``; relative paths are from the CSV's folder.

    The group column is ``group_column`` or the first of :data:`GROUP_COLUMNS` in the header
    (any case); rows without a group value fall back to the clip name (:func:`parse_group`).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save the manifest as UTF-8 (spreadsheets: 'CSV UTF-8')"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{path}: manifest not readable ({exc.strerror or exc})") from None
    if "\0" in text:  # the csv module refuses NUL bytes mid-read
        raise DatasetError(f"{path}: holds NUL bytes, not a CSV text file")
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [c for c in reader.fieldnames or [] if c is not None]
        columns: dict[str, str] = {}
        for column in header:  # the first spelling of a name wins
            columns.setdefault(column.strip().lower(), column)
        if "path" not in columns or "label" not in columns:
            raise DatasetError(f"{path}: header must start with 'path,label', got {header}")
        path_col, label_col = columns["path"], columns["label"]
        split_col = columns.get("split")
        group_col = _group_column(path, columns, group_column)
        used = {path_col, label_col, split_col, group_col}
        ignored = [c for c in header if c not in used and c.strip()]
        items = []
        for n, row in enumerate(reader, 2):
            video_text, label = (row.get(path_col) or "").strip(), (row.get(label_col) or "")
            if not video_text or not label.strip():
                raise DatasetError(f"{path}:{n}: empty '{path_col}' or '{label_col}'")
            video = Path(video_text)
            group = (row.get(group_col) or "").strip() if group_col else ""
            items.append(
                VideoItem(
                    video if video.is_absolute() else path.parent / video,
                    label,
                    group or parse_group(video.stem),
                    ((row.get(split_col) or "").strip() or None) if split_col else None,
                )
            )
    classes_file = path.parent / "classes.json"
    classes = (
        load_classes(classes_file)
        if classes_file.is_file()
        else sorted({item.label for item in items})
    )
    name = path.stem if path.stem != "manifest" else path.parent.name
    return VideoIndex(name, items, classes, group_col, ignored)


def leave_one_group_out(index: VideoIndex, test_group: str) -> VideoIndex:
    """UCF50's protocol: every clip of ``test_group`` is test, the rest train."""
    groups = sorted({item.group for item in index if item.group})
    if test_group not in groups:
        raise DatasetError(f"{index.name}: group '{test_group}' not found; groups are {groups}")
    return index.with_splits("test" if item.group == test_group else "train" for item in index)


class DatasetConfig(StrictModel):
    """Which dataset and which split a run uses."""

    kind: Literal["auto", "ucf101", "hmdb51", "ucf50", "folder", "csv"] = "auto"
    """``auto``: ``ucf101``/``hmdb51`` when ``annotations`` holds their split files, ``csv`` for a
    .csv file or a folder holding ``manifest.csv``, else ``folder``."""
    root: Path
    """Video root (``folder``, ``ucf101``, ``hmdb51``, ``ucf50``) or the manifest (``csv``)."""
    annotations: Path | None = None
    """Split files: ``ucfTrainTestlist`` for UCF101, the split-text folder for HMDB51."""
    split: PositiveInt = 1
    """Official split (UCF101/HMDB51: 1-3), the held-out group for UCF50 (1-25), or with
    ``cross_validation`` the held-out fold."""
    cross_validation: Literal["leave-one-group-out"] | conint(ge=2, le=100) | None = None
    """Data without official splits, split by group for cross-validation: split ``k`` holds
    out the k-th group (``leave-one-group-out``, groups in natural order: 2 before 10) or
    fold ``k`` of K group folds stratified by class (an integer K). Replaces a manifest's
    split column; None: one group-aware split of ``test_fraction`` where the data has none."""
    test_fraction: confloat(gt=0.0, lt=1.0) = 0.2
    """Group-aware split size where the data has no split of its own."""
    seed: int = 0
    allow_missing: bool = False
    """Use the videos present when split files list videos missing from ``root`` (refused by
    default: a benchmark number from part of a benchmark is not the benchmark's)."""
    allow_leakage: bool = False
    """Accept a split that puts one group on both sides (refused by default)."""
    group_column: str | None = None
    """CSV column holding the group (default: the first of group/actor/person/subject/performer)."""


def load_index(config: DatasetConfig) -> VideoIndex:
    """The index of ``config`` as the data defines it (official splits where they exist)."""
    kind, root = resolve_kind(config), Path(config.root)
    if kind == "ucf101":
        index = ucf101_index(root, config.split, config.annotations)
        ann = config.annotations or root / "ucfTrainTestlist"
        if config.annotations is None and not ann.is_dir():
            ann = root.parent / "ucfTrainTestlist"  # where ucf101_index found them
        return _check_listed_videos(index, root, ann, "UCF-101", config.allow_missing)
    if kind == "hmdb51":
        if config.annotations is None:
            raise DatasetError(
                "hmdb51 needs 'annotations': the folder of *_test_split<k>.txt files"
            )
        index = hmdb51_index(root, config.annotations, config.split)
        return _check_listed_videos(index, root, config.annotations, "HMDB51", config.allow_missing)
    if kind == "ucf50":
        return leave_one_group_out(ucf50_index(root), f"g{config.split:02d}")
    if kind == "folder":
        return folder_index(root)
    return csv_index(root / "manifest.csv" if root.is_dir() else root, config.group_column)


#: Kinds whose data defines its own splits; ``split`` means something only for them.
OFFICIAL_SPLITS = {"ucf101": 3, "hmdb51": 3, "ucf50": 25}


def _annotations_kind(ann: Path) -> str | None:
    """``ucf101`` or ``hmdb51`` when ``ann`` holds that benchmark's split files."""
    if (ann / "classInd.txt").is_file() and any(ann.glob("trainlist0[1-9].txt")):
        return "ucf101"
    if any(ann.glob("*_test_split[1-9].txt")):
        return "hmdb51"
    return None


def resolve_kind(config: DatasetConfig) -> str:
    """The concrete kind of ``config``; refuses settings the kind would silently ignore.

    ``auto`` is ``ucf101``/``hmdb51`` when ``annotations`` holds their split files, else
    ``csv`` for a .csv file or a folder holding ``manifest.csv``, else ``folder``.
    """
    kind, root, ann = config.kind, Path(config.root), config.annotations
    if kind == "auto" and ann is not None:
        if not Path(ann).is_dir():
            raise DatasetError(f"{ann}: annotations folder not found")
        found = _annotations_kind(Path(ann))
        if found is None:
            raise DatasetError(
                f"{ann}: no UCF101 (classInd.txt + trainlist0N.txt) or HMDB51 "
                "(<class>_test_split<k>.txt) split files; pass --kind or drop --annotations"
            )
        kind = found
    elif kind == "auto":
        is_csv = root.suffix.lower() == ".csv" or (root / "manifest.csv").is_file()
        kind = "csv" if is_csv else "folder"
    elif ann is not None and kind not in ("ucf101", "hmdb51"):
        # Annotations are only read by ucf101/hmdb51; ignoring them would train on a random split.
        raise DatasetError(
            f"{ann}: annotations are UCF101/HMDB51 split files, which kind '{kind}' does "
            "not read; drop --annotations or pass --kind ucf101/hmdb51"
        )
    if config.group_column is not None and kind != "csv":
        raise DatasetError(
            f"{root}: --group-column '{config.group_column}' names a CSV manifest column, "
            f"but this is a '{kind}' dataset; drop --group-column"
        )
    if config.split != 1 and kind not in OFFICIAL_SPLITS and config.cross_validation is None:
        raise DatasetError(
            f"{root}: split {config.split} asked, but a '{kind}' dataset has no official "
            "splits (UCF101/HMDB51: 1-3, UCF50: 1-25); drop --split, or cross-validate it "
            "(--splits leave-one-group-out or K-fold)"
        )
    return kind
