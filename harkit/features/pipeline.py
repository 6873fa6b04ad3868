"""`extract_features`: a dataset's videos -> one feature store per source, resumable, sharded.

Each video is decoded once (in DataLoader workers, together with every backbone's
preprocessing, so the network never waits on the decoder) and its clip feeds every source.
Videos already in all stores are not redone, unless their feature file no longer matches its
manifest row (truncated, emptied, missing) or the video is not the file the row was made from
(its size or mtime_ns differ: the video changed, or another dataset has the same ids; see
:mod:`harkit.features.manifest`): those are re-extracted with a warning, failed rows included. A video that cannot
be read is recorded as ``failed`` in each store and in ``extract_skipped[.rankR].json`` and
skipped. Under torchrun (or srun) rank ``r`` of ``N`` takes items ``i % N == r`` and writes
its rows into its own manifest shard of each store (``manifest-rank<r>-of-<N>.sqlite``, opened
by no other rank), so nodes that share only a file system fill one store, which readers see
as one (see :mod:`harkit.features.manifest`). The decode workers die with this process, even on
``kill -9``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from harkit._lazy import validated
from harkit.arguments import PathArg
from harkit.data.clips import load_clip
from harkit.data.datasets import DatasetConfig, VideoIndex
from harkit.data.jobs import (
    common_video_root,
    die_with_parent,
    open_skip_report,
    progress_bar,
    rank_report_path,
    resolve_shard,
    shard_indices,
    video_id,
)
from harkit.data.sampling import SamplingConfig, sample_indices
from harkit.data.transforms import TransformConfig
from harkit.engine_choice import (
    cpu_signature,
    onnxruntime_version,
    record_engine,
)
from harkit.errors import HarkitError
from harkit.features.config import StoreDtype, store_config
from harkit.features.engines import Engine, auto_compile, probe_settings
from harkit.features.errors import FeatureStoreError
from harkit.features.extractor import FeatureExtractor
from harkit.features.flow_settings import record_flow_settings, stored_flow_config
from harkit.features.manifest import source_stamp
from harkit.features.preprocess import Preprocessor, source_key
from harkit.features.store import FeatureStore
from harkit.flow.extract import CONFIG_FILE, FlowConfig, flow_settings, stored_video_root
from harkit.flow.sampled import SampledFlow, load_clip_and_flow
from harkit.flow.storage import flow_file_path, load_flow
from harkit.models.recipe import FeatureSource
from harkit.precision import Precision

__all__ = [
    "ExtractionReport",
    "dataset_video_root",
    "extract_features",
    "launch_shard",
    "load_flow_clip",
    "skip_report_path",
    "video_id",
    "video_ids_under",
]

log = logging.getLogger(__name__)


@dataclass
class ExtractionReport:
    """What one rank did."""

    rank: int
    world_size: int
    videos: int
    """Videos in this rank's share."""
    extracted: int
    existing: int
    failed: int
    steps: int
    """Time steps (frames or segments) computed."""
    seconds: float
    stores: dict[str, str] = field(default_factory=dict)
    skip_report: str = ""
    extractor: dict[str, Any] = field(default_factory=dict)
    repaired: int = 0
    """Videos marked done whose file was damaged, so re-extracted (counted in ``extracted``)."""
    changed: int = 0
    """Videos whose row was made from another file (size or mtime_ns differ), so redone."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def launch_shard(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the arguments, else torchrun's ``RANK``/``WORLD_SIZE``, else
    srun's ``SLURM_PROCID`` with ``SLURM_STEP_NUM_TASKS`` (or ``SLURM_NTASKS``).

    torchrun wins where both are set (``srun torchrun ...`` gives every node SLURM_PROCID of
    its agent, not of its worker). A batch script that runs ``harkit extract`` itself, not
    under ``srun``, has no SLURM_STEP_NUM_TASKS but may have SLURM_NTASKS: launch with srun.
    """
    env = os.environ
    if rank is None and world_size is None and "RANK" not in env and "SLURM_PROCID" in env:
        tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
        try:
            rank, world_size = int(env["SLURM_PROCID"]), int(tasks)
        except ValueError as exc:
            raise HarkitError(f"SLURM_PROCID / SLURM_NTASKS must be integers ({exc})") from None
    return resolve_shard(rank, world_size)


def dataset_video_root(config: DatasetConfig) -> Path:
    """The folder that video ids are relative to: the dataset root (a CSV's folder)."""
    root = Path(os.path.abspath(config.root))
    return root.parent if root.suffix.lower() == ".csv" else root


def video_ids_under(paths: Sequence[str | os.PathLike[str]], video_root: str | Path) -> list[str]:
    """:func:`~harkit.data.jobs.video_id` of each path, in order: the same ids, without a
    ``pathlib`` round trip per path for those under the root (13,320 ids: 0.05 s, not 0.5 s)."""
    root = os.path.abspath(video_root)
    prefix = root if root.endswith(os.sep) else root + os.sep
    ids = []
    for path in paths:
        absolute = os.path.abspath(path)
        if os.sep == "/" and absolute.startswith(prefix) and not absolute.startswith("//"):
            ids.append(absolute[len(prefix) :])
        else:  # outside the root, or not a POSIX path: the general rule
            ids.append(video_id(path, video_root))
    return ids


def skip_report_path(store_root: str | Path, rank: int = 0, world_size: int = 1) -> Path:
    return rank_report_path(store_root, "extract_skipped", rank, world_size)


def _flow_video_root(flow_root: Path, index: VideoIndex) -> Path:
    return stored_video_root(flow_root) or common_video_root(index)


def load_flow_clip(
    video: str | Path, flow_root: str | Path, flow_video_root: str | Path, sampling: SamplingConfig
) -> np.ndarray:
    """Stored flow of ``video`` sampled over its pairs as :class:`~harkit.flow.FlowDataset`
    does: ``uint8 (T, H, W, 2)`` or ``(T, L, H, W, 2)``."""
    stored = load_flow(flow_file_path(video, flow_video_root, flow_root))
    picks = sample_indices(len(stored.flow), sampling).indices
    flat = stored.flow[picks.reshape(-1)]
    return flat.reshape(*picks.shape, *flat.shape[1:])


class _Jobs(Dataset):
    """Decode + preprocess one video per item (runs in DataLoader workers)."""

    def __init__(
        self,
        index: VideoIndex,
        positions: Sequence[int],
        sampling: SamplingConfig,
        preprocessor: Preprocessor,
        backend: str,
        flow: Path | SampledFlow | None,
        flow_video_root: Path | None,
    ) -> None:
        self.index, self.positions, self.sampling = index, list(positions), sampling
        self.preprocessor, self.backend = preprocessor, backend
        self.flow, self.flow_video_root = flow, flow_video_root

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> dict[str, Any]:
        position = self.positions[k]
        path = self.index[position].path
        try:
            frames = flow = None
            if isinstance(self.flow, SampledFlow):  # one decode for both streams
                frames, flow = load_clip_and_flow(
                    path, self.sampling, self.flow, backend=self.backend
                )
            elif self.preprocessor.needs_rgb:
                frames, _ = load_clip(path, self.sampling, backend=self.backend)
            if isinstance(self.flow, Path):
                assert self.flow_video_root is not None
                flow = load_flow_clip(path, self.flow, self.flow_video_root, self.sampling)
            inputs = self.preprocessor(frames, flow)
        except (HarkitError, ValueError) as exc:  # unreadable video / flow, too small to crop
            return {"position": position, "error": getattr(exc, "reason", None) or str(exc)}
        except MemoryError as exc:  # e.g. resizing frames just under the pixel cap
            return {"position": position, "error": f"ran out of memory preprocessing it ({exc})"}
        return {"position": position, "inputs": inputs}


class _Batcher:
    """Runs the extractor on batches of ``chunk_size`` items that span videos.

    A network call on a video's short tail wastes most of the batch's parallelism, and under
    ``compile`` a new batch shape compiles again: here every call but the job's last is full
    (and the extractor pads that one when compiled). Each preprocessing key (network input)
    fills its own batches, since flow has one step less than frames. A video comes back once
    every source has all its steps.
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self.groups = {g.prep_key: i for i, g in reversed(list(enumerate(extractor.groups)))}
        self.pending: dict[tuple, list[tuple[int, torch.Tensor]]] = {k: [] for k in self.groups}
        self.parts: dict[int, dict[str, list[torch.Tensor]]] = {}  # in order: queues are FIFO
        self.missing: dict[int, int] = {}  # token -> items not yet run, over all keys

    def add(self, token: int, inputs: dict[tuple, torch.Tensor]) -> list[tuple[int, dict]]:
        """Queue one video's inputs; return the videos finished so far."""
        self.parts[token] = {key: [] for key in self.extractor.keys}
        self.missing[token] = sum(len(inputs[key]) for key in self.groups)
        done = []
        if not self.missing[token]:  # nothing to batch: the extractor gives empty features
            del self.parts[token], self.missing[token]
            return [(token, self.extractor.run(inputs))]
        for key in self.groups:
            if len(inputs[key]):
                self.pending[key].append((token, inputs[key]))
            while self._queued(key) >= self._step(key):
                done += self._run(key)
        return done

    def flush(self) -> list[tuple[int, dict]]:
        """Run the partial batches left at the end of the job."""
        done = []
        for key in self.groups:
            while self.pending[key]:
                done += self._run(key)
        return done

    def _queued(self, key: tuple) -> int:
        return sum(len(x) for _, x in self.pending[key])

    def _step(self, key: tuple) -> int:
        queue = self.pending[key]
        length = queue[0][1].shape[1] if queue and queue[0][1].ndim == 5 else 1
        return self.extractor.step(self.groups[key], length)

    def _run(self, key: tuple) -> list[tuple[int, dict]]:
        step, queue = self._step(key), self.pending[key]
        pieces: list[tuple[int, torch.Tensor]] = []
        taken = 0
        while queue and taken < step:
            token, x = queue[0]
            piece = x[: step - taken]
            pieces.append((token, piece))
            taken += len(piece)
            if len(piece) == len(x):
                queue.pop(0)
            else:
                queue[0] = (token, x[len(piece) :])
        batch = torch.cat([p for _, p in pieces]) if len(pieces) > 1 else pieces[0][1]
        features = self.extractor.run_groups({key: batch})
        done = []
        at = 0
        for token, piece in pieces:
            for source, values in features.items():
                self.parts[token][source].append(values[at : at + len(piece)])
            at += len(piece)
            self.missing[token] -= len(piece)
            if not self.missing[token]:
                parts = self.parts.pop(token)
                del self.missing[token]
                done.append(
                    (token, {k: torch.cat(p) if p else torch.zeros(0) for k, p in parts.items()})
                )
        return done


def _record_engines(
    stores: dict[str, FeatureStore],
    extractor: FeatureExtractor,
    summary: ExtractionReport,
    run: dict[str, Any],
) -> None:
    """Write which engine made each store's features (``engines.json``, see
    :func:`harkit.engine_choice.record_engine`); a failure to write it is only logged."""
    for key, store in stores.items():
        entry = {
            **run,
            "videos": summary.extracted,
            "steps": summary.steps,
            **(extractor.engine_of(key) or {"engine": None}),
        }
        try:
            record_engine(store.path, entry, summary.rank, summary.world_size)
        except OSError as exc:
            log.warning("could not record the engine in %s: %s", store.path, exc)


def _identity(item: Any) -> Any:
    return item


def _init_worker(worker_id: int) -> None:
    die_with_parent()  # a killed extract must not leave decoders running
    # Workers decode; one thread each leaves the cores to the network in the main process.
    # (Not cv2.setNumThreads: in a forked child it deadlocks on the parent's thread pool.)
    torch.set_num_threads(1)


def _failed_entries(
    stores: Sequence[FeatureStore], index: VideoIndex, ids: Sequence[str], positions: list[int]
) -> dict[str, str]:
    """This share's skip report as the manifests remember it (to rebuild a corrupt one)."""
    failed: dict[str, str] = {}
    for store in stores:
        failed.update((row.video_id, row.error) for row in store.rows("failed"))
    return {str(index[p].path): failed[ids[p]] for p in positions if ids[p] in failed}


@validated
def extract_features(
    index: VideoIndex,
    sources: Annotated[Sequence[FeatureSource], Field(min_length=1)],
    store_root: PathArg,
    sampling: SamplingConfig | None = None,
    transform: TransformConfig | None = None,
    *,
    dtype: StoreDtype = "float16",
    precision: Precision = "auto",
    engine: Engine = "auto",
    batch_size: Annotated[int, Field(ge=1)] = 32,
    num_workers: Annotated[int, Field(ge=0)] = 2,
    device: str | torch.device | None = None,
    compile: bool | None = None,
    flow_root: PathArg | None = None,
    flow_method: str | None = "tvl1",
    video_root: PathArg | None = None,
    backend: str = "auto",
    rank: int | None = None,
    world_size: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> ExtractionReport:
    """Extract this rank's share of ``index`` into one store per source under ``store_root``.

    ``batch_size`` frames (segments: ``batch_size // L``) go through a network at once;
    ``num_workers`` DataLoader processes decode and preprocess (0: in this process).
    ``video_root`` (default: the deepest folder holding every video) makes the video ids.
    ``flow_root`` holds the flow files (``harkit flow``) that ``stream='flow'`` sources read;
    without it the sampled pairs are computed here with ``flow_method`` and ``harkit flow``'s
    defaults (what ``predict`` computes for the trained model).
    Batches span videos (every network call is full). ``engine='auto'`` on a CPU takes the
    engine measured fastest on this CPU (:func:`probe_settings`: cached per CPU, network and
    input shape, else measured on the first batch; ``compile=None`` lets compiled PyTorch be
    a candidate where that pays, ``compile=True`` forces it); an explicit ``engine`` or a GPU
    follows :func:`auto_compile`. Each store records which engine made its features
    (``engines.json``, :func:`harkit.engine_choice.read_engine_records`). Failed videos are
    retried only with ``retry_failed``. ``engine`` (PyTorch or onnxruntime, see
    :class:`FeatureExtractor`) does not enter the store key: like ``precision`` it changes
    features only within float tolerance.
    """
    sampling = sampling or SamplingConfig()
    transform = transform or TransformConfig()
    rank, world_size = launch_shard(rank, world_size)
    root = Path(os.path.abspath(video_root)) if video_root else common_video_root(index)
    preprocessor = Preprocessor(sources, transform)
    stores = {  # each rank writes its own manifest shard (one file, one writer)
        source_key(s): FeatureStore.at(
            store_root,
            store_config(s, sampling, transform, dtype=dtype, flow_method=flow_method),
            shard=(rank, world_size),
        )
        for s in sources
    }
    ids = video_ids_under([item.path for item in index], root)
    positions = shard_indices(len(index), rank, world_size)
    report = open_skip_report(
        skip_report_path(store_root, rank, world_size),
        functools.partial(_failed_entries, list(stores.values()), index, ids, positions),
    )
    # One pass: each store's manifests read once, each video of the share stat'ed once, each
    # feature file stat'ed once (its header is read only when its stat is not the one written).
    latest = {key: store.latest_rows() for key, store in stores.items()}
    done = {
        key: {vid for vid, row in rows.items() if not retry_failed or row.status == "ok"}
        for key, rows in latest.items()
    }
    share = {ids[p] for p in positions}
    stamps = {ids[p]: source_stamp(index[p].path) for p in positions}  # before any decoding
    changed: set[str] = set()
    for key, rows in latest.items():  # a row of another file (ok or failed) is not done
        stale = {
            vid for vid, stamp in stamps.items() if vid in rows and not rows[vid].matches(stamp)
        }
        done[key] -= stale
        changed |= stale
    if changed:
        log.warning(
            "%d video(s) changed since extraction (or are other files with the same ids): "
            "re-extracting",
            len(changed),
        )
    repaired: set[str] = set()
    for key, store in stores.items():
        for vid, problem in store.damaged(share, latest[key]).items():  # done, file not right
            log.warning("feature file %s %s: re-extracting %s", problem.file, problem.reason, vid)
            done[key].discard(vid)
            repaired.add(vid)
    todo = [p for p in positions if any(ids[p] not in d for d in done.values())]
    existing = len(positions) - len(todo)

    start = time.perf_counter()
    summary = ExtractionReport(
        rank,
        world_size,
        len(positions),
        0,
        existing,
        0,
        0,
        0.0,
        {k: str(s.path) for k, s in stores.items()},
        str(report.path),
        repaired=len(repaired),
        changed=len(changed),
    )
    flow: Path | SampledFlow | None = None
    flow_video_root = None
    if preprocessor.needs_flow:
        flow_stores = [stores[source_key(s)] for s in sources if s.stream == "flow"]
        if flow_root is not None:
            flow = Path(flow_root)
            if not flow.is_dir():
                raise HarkitError(
                    f"--flow-root {flow}: folder not found (the output of `harkit flow`)"
                )
            settings = flow_settings(flow)
            if settings and flow_method and settings.get("method") != flow_method:
                log.warning(
                    "%s holds %s flow, the recipe names %s: its features (and the "
                    "run's inference) follow the flow files",
                    flow,
                    settings.get("method"),
                    flow_method,
                )
            record_flow_settings(flow_stores, settings, str(flow / CONFIG_FILE))
            flow_video_root = _flow_video_root(flow, index)
        else:  # no flow files: the sampled pairs, as `harkit flow` would have computed them
            config = stored_flow_config(flow_stores)
            origin = "the settings the store records"
            if config is None:
                config = FlowConfig(method=flow_method or "tvl1")
                origin = f"flow_method {config.method} with `harkit flow` defaults"
            flow = SampledFlow(config)
            record_flow_settings(flow_stores, config.model_dump(mode="json"), origin)
    if not todo:
        log.info("features rank %d/%d: all %d videos already done", rank, world_size, existing)
        return summary
    probe = probe_settings(len(todo), device, engine, compile)
    if compile is None:  # under a probe, compiling is one of the measured candidates
        compile = probe is None and auto_compile(len(todo), sources, device, precision, engine)
    extractor = FeatureExtractor(
        sources,
        transform,
        device=device,
        precision=precision,
        engine=engine,
        compile=compile,
        chunk_size=batch_size,
        probe=probe,
    )
    summary.extractor = extractor.describe()
    engine_run = {
        "run": f"{time.time():.6f}-{os.getpid()}",
        "started": time.time(),
        "finished": None,
        "batch_size": batch_size,
        "device": str(extractor.device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_signature()["model"],
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version(),
    }
    jobs = _Jobs(index, todo, sampling, preprocessor, backend, flow, flow_video_root)
    workers = min(num_workers, len(todo))
    loader = DataLoader(
        jobs,
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
        worker_init_fn=_init_worker if workers else None,
        prefetch_factor=4 if workers else None,
    )
    bar = progress_bar("features", len(positions), existing, enabled=progress, rank=rank)
    batcher = _Batcher(extractor)

    def save(position: int, features: dict[str, torch.Tensor]) -> None:
        vid, path = ids[position], os.path.abspath(index[position].path)
        try:
            for key, store in stores.items():
                if vid not in done[key]:
                    store.put(vid, features[key], path=path, source=stamps[vid])
        except FeatureStoreError as exc:  # NaN/Inf features, or past float16's range
            fail(position, str(exc))
            return
        summary.extracted += 1
        summary.steps += int(next(iter(features.values())).shape[0])
        if summary.extracted == 1:  # every network has run: record how (again at the end)
            _record_engines(stores, extractor, summary, engine_run)
        bar.update(1)
        elapsed = max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(steps_per_s=f"{summary.steps / elapsed:.1f}")

    def fail(position: int, error: str) -> None:
        vid, path = ids[position], os.path.abspath(index[position].path)
        summary.failed += 1
        report.record(index[position].path, error)
        for key, store in stores.items():
            if vid not in done[key]:
                store.put_failed(vid, error, path=path, source=stamps[vid])
        bar.update(1)

    try:
        with contextlib.ExitStack() as batches:
            for store in stores.values():  # rows committed together (<= 1 s apart), then all
                batches.enter_context(store.batched())
            for job in loader:
                position = job["position"]
                if "error" in job:
                    fail(position, job["error"])
                    continue
                for finished, features in batcher.add(position, job["inputs"]):
                    save(finished, features)
            for finished, features in batcher.flush():
                save(finished, features)
    finally:
        bar.close()
        report.close()
    summary.extractor = extractor.describe()  # with the compile check's outcome
    if summary.extracted:
        _record_engines(stores, extractor, summary, {**engine_run, "finished": time.time()})
    summary.seconds = time.perf_counter() - start
    log.info(
        "features rank %d/%d: %d videos, %d extracted (%d steps, %.1f/s; %d re-extracted as "
        "damaged, %d as changed), %d already done, %d failed",
        rank,
        world_size,
        len(positions),
        summary.extracted,
        summary.steps,
        summary.steps / max(summary.seconds, 1e-9),
        summary.repaired,
        summary.changed,
        existing,
        summary.failed,
    )
    return summary
