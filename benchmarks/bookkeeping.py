"""What harkit's bookkeeping costs at UCF101 size: skip reports, no-op extract, data preparation.

Generates ``--videos`` (default 13,320, UCF101's count) stand-in videos in UCF101's layout
(101 classes, groups g01-g25, ``ucfTrainTestlist`` with the three official splits; the files
hold a few bytes and are not decodable) and a feature store pre-filled for every one of them
with rows of the weight-free ``tiny_image`` source of the ``synthetic-gru`` recipe (the rows
carry each stand-in's size and mtime, as an extraction would record). Then, each stage in a
fresh process and timed after its imports:

* ``skip_report``: ``open_skip_report`` + ``record`` of N unreadable videos (what a job that
  fails on every video writes), then the report opened again and checked to hold N entries;
  beside it the old approach (the whole JSON rewritten and fsynced on every failure) measured
  on ``--naive-videos`` failures, and N/naive times that: a lower bound of its cost at N (each
  rewrite grows with the report: the real cost is quadratic, 209 s at 13,320 here);
* ``failing_extract``: ``harkit extract`` over the N stand-ins into an empty store: every video
  fails to decode and is recorded in the manifest and the skip report (end to end);
* ``noop_extract``: ``harkit extract`` (the CLI, in process) when every video is already in the
  store: from the command line to the decision that nothing is left; beside it the old
  approach's extra pass, opening every feature file's ``.npy`` header;
* ``train_prepare``: ``prepare_data`` of ``harkit train`` (index, validation carve, the store
  check of every video, the datasets);
* ``evaluate_prepare``: the data preparation of ``harkit evaluate`` (the test split only where
  this harkit supports it).

Each stage reports seconds in total and per video (timed after the imports, the lazy ones of
the command included) and ``process_seconds``, the wall time of its whole process. Run it on
another checkout (a before/after figure) with ``PYTHONPATH=<that checkout>``;
``results/bookkeeping-before.json`` is this benchmark on harkit before the append-only skip
report, the manifest shards and the stat-checked feature files::

    python benchmarks/bookkeeping.py --out benchmarks/results/bookkeeping.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLASSES = 101
GROUPS = 25
STAND_IN = b"harkit benchmark stand-in: not a video\n"
REASON = "cannot decode: Invalid data found when processing input (stand-in, not a video)"
RECIPE = "synthetic-gru"


def _layout(n: int) -> list[tuple[str, int, int, int]]:
    """``(class name, class number, group, clip)`` of each of ``n`` videos."""
    out = []
    for i in range(n):  # 101 and 25 are coprime: every (class, group) pair in turn
        c, g, clip = i % CLASSES, i % GROUPS, i // (CLASSES * GROUPS)
        out.append((f"Class{c + 1:03d}", c + 1, g + 1, clip + 1))
    return out


def generate(work: Path, n: int) -> dict[str, Any]:
    """Stand-in videos, official-style split files and a pre-filled store under ``work``."""
    import numpy as np

    from harkit.data.datasets import DatasetConfig
    from harkit.data.jobs import video_id
    from harkit.features.dataset import feature_stores_for
    from harkit.features.pipeline import dataset_video_root
    from harkit.models.recipe import load_recipe

    root, ann = work / "UCF-101", work / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    rels = []
    for name, _, group, clip in _layout(n):
        rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(STAND_IN)
        rels.append((rel, name, group))
    (ann / "classInd.txt").write_text(
        "".join(f"{c + 1} Class{c + 1:03d}\r\n" for c in range(CLASSES))
    )
    number = {f"Class{c + 1:03d}": c + 1 for c in range(CLASSES)}
    for split in (1, 2, 3):
        test_groups = range(7 * (split - 1) + 1, 7 * split + 1)  # as UCF101: 7 groups test
        train = [f"{r} {number[c]}\r\n" for r, c, g in rels if g not in test_groups]
        test = [f"{r}\r\n" for r, c, g in rels if g in test_groups]
        (ann / f"trainlist0{split}.txt").write_text("".join(train))
        (ann / f"testlist0{split}.txt").write_text("".join(test))
    config = DatasetConfig(root=root, kind="ucf101", annotations=ann)
    recipe = load_recipe(RECIPE)
    (location,) = feature_stores_for(recipe, None, None, work / "store")
    store = location.open()
    vroot = dataset_video_root(config)
    features = np.zeros((2, location.config.feature_dim), dtype=np.float32)
    start = time.perf_counter()
    batched = getattr(store, "batched", None)  # group commits where this harkit has them
    with batched() if batched else _nothing():
        for rel, _, _ in rels:
            path = root / rel
            store.put(video_id(path, vroot), features, path=os.path.abspath(path))
    store.close()
    return {"store_fill_s": time.perf_counter() - start, "store": str(location.path)}


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _config(work: Path):
    from harkit.data.datasets import DatasetConfig

    return DatasetConfig(
        root=work / "UCF-101", kind="ucf101", annotations=work / "ucfTrainTestlist"
    )


def _cli_args(work: Path, store: Path) -> list[str]:
    return [
        "extract",
        str(work / "UCF-101"),
        "--kind",
        "ucf101",
        "--annotations",
        str(work / "ucfTrainTestlist"),
        "--recipe",
        RECIPE,
        "--store",
        str(store),
        "--workers",
        "0",
        "--no-progress",
        "--engine",
        "torch",
    ]


def _stage_skip_report(work: Path, n: int, naive: int) -> dict[str, Any]:
    from harkit.data.jobs import open_skip_report
    from harkit.io import atomic_write_text

    paths = [
        str(work / "UCF-101" / f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi")
        for name, _, g, c in _layout(n)
    ]
    target = work / "reports" / "extract_skipped.json"
    target.parent.mkdir(exist_ok=True)
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    report = open_skip_report(target)
    for path in paths:
        report.record(path, REASON)
    for finish in ("close", "sync"):  # flush what this harkit buffers, if anything
        if callable(getattr(report, finish, None)):
            getattr(report, finish)()
            break
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = open_skip_report(target)
    reopen = time.perf_counter() - start
    assert len(again.entries) == n and again.entries[paths[-1]] == REASON, len(again.entries)

    # the old approach: the whole JSON rewritten (and fsynced) on every failure
    naive = min(naive, n)
    entries: dict[str, str] = {}
    old = work / "reports" / "naive.json"
    start = time.perf_counter()
    for path in paths[:naive]:
        entries[path] = REASON
        atomic_write_text(old, json.dumps(entries, indent=1, sort_keys=True))
    naive_seconds = time.perf_counter() - start
    # each rewrite costs at least what the first ones did: N/naive times the measured time is
    # a lower bound at N (the real cost grows faster, with the size of every rewrite)
    at_least = naive_seconds * n / naive
    return {
        "seconds": seconds,
        "per_video_ms": 1e3 * seconds / n,
        "reopen_seconds": reopen,
        "bytes": target.stat().st_size,
        "naive": {
            "videos": naive,
            "seconds": naive_seconds,
            "per_video_ms": 1e3 * naive_seconds / naive,
            "lower_bound_seconds_at_n": at_least,
            "ratio_at_n_at_least": at_least / seconds,
        },
    }


def _stage_failing_extract(work: Path, n: int) -> dict[str, Any]:
    from harkit.cli import main as cli_main

    store = work / "failing-store"
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    code = cli_main.main(_cli_args(work, store))
    seconds = time.perf_counter() - start
    assert code == 1, code  # no video could be extracted
    (report,) = store.glob("extract_skipped*.json")
    from harkit.data.jobs import open_skip_report

    assert len(open_skip_report(report).entries) == n
    return {"seconds": seconds, "per_video_ms": 1e3 * seconds / n}


def _stage_noop_extract(work: Path, n: int) -> dict[str, Any]:
    import torchvision.transforms.v2  # noqa: F401  (what the command imports lazily)

    from harkit.cli import main as cli_main
    from harkit.features import pipeline  # noqa: F401  (imported before the clock starts)
    from harkit.features.store import FeatureStore, _npy_header

    report = work / "noop-report.json"
    start = time.perf_counter()
    code = cli_main.main([*_cli_args(work, work / "store"), "--report", str(report)])
    seconds = time.perf_counter() - start
    summary = json.loads(report.read_text())
    assert code == 0 and summary["existing"] == n and summary["extracted"] == 0, summary
    # the old approach's extra pass: every feature file's .npy header opened and parsed
    (folder,) = [p for p in (work / "store").iterdir() if (p / "config.json").is_file()]
    store = FeatureStore(folder)
    rows = list(store.rows("ok"))
    start = time.perf_counter()
    for row in rows:
        with open(folder / row.file, "rb") as handle:
            _npy_header(handle)
    headers = time.perf_counter() - start
    return {
        "seconds": seconds,
        "per_video_ms": 1e3 * seconds / n,
        "naive": {
            "what": "open and parse every feature file's .npy header once",
            "seconds": headers,
            "per_video_ms": 1e3 * headers / n,
        },
    }


def _counts(data: Any) -> dict[str, int]:
    """Videos per split of prepared data (``TrainData.info`` was a dict before it was typed:
    this benchmark also runs on older checkouts)."""
    info = data.info
    return dict(info["counts"]) if isinstance(info, dict) else info.counts.model_dump()


def _stage_train_prepare(work: Path, n: int) -> dict[str, Any]:
    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    recipe = load_recipe(RECIPE)
    start = time.perf_counter()
    data = prepare_data(recipe, _config(work), store=work / "store", progress=False)
    seconds = time.perf_counter() - start
    assert sum(_counts(data).values()) == n, _counts(data)
    return {"seconds": seconds, "per_video_ms": 1e3 * seconds / n}


def _stage_evaluate_prepare(work: Path, n: int) -> dict[str, Any]:
    import inspect

    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    recipe = load_recipe(RECIPE)
    recipe = recipe.model_copy(
        update={"optim": recipe.optim.model_copy(update={"val_fraction": 0})}
    )
    kwargs: dict[str, Any] = {}
    if "splits" in inspect.signature(prepare_data).parameters:  # evaluate reads the test split
        kwargs["splits"] = ("test",)
    start = time.perf_counter()
    data = prepare_data(
        recipe, _config(work), store=work / "store", views=1, progress=False, **kwargs
    )
    seconds = time.perf_counter() - start
    tested = _counts(data)["test"]
    assert data.test is not None and len(data.test) == tested
    return {
        "seconds": seconds,
        "per_video_ms": 1e3 * seconds / n,
        "test_videos": tested,
        "test_split_only": bool(kwargs),
    }


STAGES = {
    "skip_report": _stage_skip_report,
    "failing_extract": _stage_failing_extract,
    "noop_extract": _stage_noop_extract,
    "train_prepare": _stage_train_prepare,
    "evaluate_prepare": _stage_evaluate_prepare,
}


def _run_stage(name: str, work: Path, n: int, naive: int) -> dict[str, Any]:
    """One stage in a fresh process (no cache of another stage helps it)."""
    cmd = [
        sys.executable,
        __file__,
        "--stage",
        name,
        "--work",
        str(work),
        "--videos",
        str(n),
        "--naive-videos",
        str(naive),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall  # the whole process: interpreter, imports, the stage
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bookkeeping.json"))
    parser.add_argument("--videos", type=int, default=13320)
    parser.add_argument(
        "--naive-videos",
        type=int,
        default=1000,
        help="failures the old skip-report approach is timed on",
    )
    parser.add_argument("--work", type=Path, help="work folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated")
    parser.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # 13k "skipping" warnings would time the tty
    if args.stage:
        kwargs = {"naive": args.naive_videos} if args.stage == "skip_report" else {}
        print(json.dumps(STAGES[args.stage](args.work, args.videos, **kwargs)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="harkit-bookkeeping-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        setup = generate(work, args.videos)
        setup["seconds"] = time.perf_counter() - start
        results: dict[str, Any] = {}
        for name in args.stages.split(","):
            results[name] = _run_stage(name, work, args.videos, args.naive_videos)
            print(
                f"{name}: {results[name]['seconds']:.3f} s "
                f"({results[name]['per_video_ms']:.4f} ms/video)",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    import harkit

    out = {
        "videos": args.videos,
        "harkit": str(Path(harkit.__file__).resolve().parent),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "setup": setup,
        "stages": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
