"""``run.json`` as typed records: what a run folder says about how it was trained.

:class:`DataRecord` is what :func:`~harkit.train.data.prepare_data` records about the data
(``TrainData.info``); :class:`RunInfo` adds the training facts. The file is written by
:func:`harkit.train.run.write_run_info` and read by :func:`harkit.train.run.read_run_info`
only; everything downstream reads the attributes of the :class:`RunInfo` it returns.

Keys an older harkit did not write are None (or empty): readers treat None as "not recorded".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator

from harkit import __version__
from harkit.data.datasets import DatasetConfig
from harkit.flow.extract import FlowConfig

__all__ = [
    "FORMAT_VERSION",
    "READABLE_FORMATS",
    "DataRecord",
    "DatasetRecord",
    "ExportedCheckpoint",
    "RunInfo",
    "SplitCounts",
    "SplitGroups",
    "TrainClips",
    "VideoFingerprint",
]

#: Bump when the files of a run folder change meaning; load_run refuses other versions.
FORMAT_VERSION = 2
"""2: each head/network type saves only its own keys (1 saved every key of one config)."""
READABLE_FORMATS = (1, 2)


class RunRecord(BaseModel):
    """Base of the records: immutable, and tolerant of keys this harkit does not know.

    Unknown keys are ignored, not refused: a newer harkit may add keys to run.json within
    one format version (a changed meaning bumps :data:`FORMAT_VERSION`, which is refused), and
    this harkit reads the keys it knows. A resume rewrites run.json with those only: this
    harkit cannot vouch for the others after training further.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class DatasetRecord(RunRecord):
    """Which data a run trained on, in words (``dataset_config`` is the config itself)."""

    name: str
    kind: str | None = None
    root: str | None = None
    """Absolute, so a run evaluated from another folder finds the same data."""
    split: int | None = None
    """Official split or cross-validation fold; None for data without numbered splits."""
    cross_validation: str | None = None
    group_column: str | None = None
    allow_leakage: bool = False


class SplitCounts(RunRecord):
    """Videos per split (those used: ``--allow-missing`` may keep fewer than listed)."""

    train: int
    val: int
    test: int


class SplitGroups(RunRecord):
    """The groups (people, source videos) each split holds: a fold's report names them."""

    train: list[str]
    val: list[str]
    test: list[str]


class TrainClips(RunRecord):
    """The typical training clip (median of probed videos): streams space frames by it."""

    frames: float
    fps: float | None = None
    videos: int | None = None


class VideoFingerprint(RunRecord):
    """Which videos the data held (a hash of their ids): resume and evaluate compare it."""

    count: int
    fingerprint: str


class ExportedCheckpoint(RunRecord):
    """The checkpoint ``model.safetensors`` was exported from, and why."""

    checkpoint: str
    """Relative to the run folder: ``checkpoints/best.ckpt`` or ``checkpoints/last.ckpt``."""
    epoch: int
    """Counted from 1; before ``epoch_index`` was recorded, Lightning's 0-based index."""
    epoch_index: int | None = None
    """Lightning's 0-based epoch index; None in run.json of an older harkit."""
    reason: str | None = None


class DataRecord(RunRecord):
    """What :func:`~harkit.train.data.prepare_data` records about the data of a run."""

    dataset: DatasetRecord | None = None
    dataset_config: DatasetConfig | None = None
    """Evaluation re-reads the test split from this (a strict config: a key this harkit does
    not know could change which videos those are, so it is refused, not ignored)."""
    counts: SplitCounts | None = None
    groups: SplitGroups | None = None
    train_clips: TrainClips | None = None
    """None in features mode, which never opens a video (streams then probe the data)."""
    validation: str | None = None
    """What validation was carved and why, in one line."""
    leakage: str | None = None
    """Whether a group sits on two sides of the split, in one line."""
    store: str | None = None
    """The feature store folder (absolute) of a features-mode run."""
    videos: VideoFingerprint | None = None

    @field_serializer("dataset_config")
    def _config_without_unused_split(self, config: DatasetConfig | None) -> Any:
        # folder/CSV data without cross-validation has no numbered split: its config's
        # default split 1 would contradict ``dataset.split: null`` in the same file
        if config is None:
            return None
        unused = self.dataset is not None and self.dataset.split is None
        return config.model_dump(mode="json", exclude={"split"} if unused else None)


class RunInfo(DataRecord):
    """``run.json``: the data record plus what training did."""

    format_version: int = FORMAT_VERSION
    harkit_version: str = __version__
    recipe: str | None = None
    mode: Literal["features", "end_to_end"] | None = None
    num_classes: int | None = None
    feature_dims: list[int] | None = None
    parameters: int | None = None
    trainable_parameters: int | None = None
    monitor: str | None = None
    """``val/acc``, or ``train/acc`` without validation."""
    exported: ExportedCheckpoint | None = None
    best_epoch: int | None = None
    """Counted from 1; None without validation."""
    best_score: float | None = None
    """Best val/acc (a fraction); None without validation."""
    epochs_run: int | None = None
    global_step: int | None = None
    devices: int | str | list[int] | None = None
    """As given to the trainer (a count, ``auto``, or device ids)."""
    num_nodes: int | None = None
    precision: str | None = None
    """As Lightning ran it (e.g. ``32-true``, ``bf16-mixed``)."""
    skipped_videos: int | None = None
    flow: FlowConfig | None = None
    """How the flow of the run's flow features was computed, so inference computes the same."""
    started: str | None = None
    finished: str | None = None
    resumed: bool = False

    @field_validator("flow", mode="before")
    @classmethod
    def _known_flow_keys(cls, value: Any) -> Any:
        # The flow settings come from a store's flow_config.json, which a newer `harkit flow`
        # may extend: this harkit computes the flow it knows (as for other unknown keys).
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k in FlowConfig.model_fields}
        return value
