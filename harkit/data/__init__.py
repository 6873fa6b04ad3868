"""Video I/O and clips: readers, sampling, transforms, dataset indexes, splits, clip datasets."""

from harkit.data.clips import ClipDataset, SkippedVideo, SkipReport, collate_clips, load_clip
from harkit.data.datasets import (
    DatasetConfig,
    DatasetError,
    VideoIndex,
    VideoItem,
    build_index,
    csv_index,
    folder_index,
    hmdb51_index,
    ucf50_index,
    ucf101_index,
)
from harkit.data.sampling import SampledIndices, SamplingConfig, sample_indices
from harkit.data.splits import LeakageError, assert_no_leakage, group_split, leave_one_group_out
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.data.video import (
    FrameCountError,
    VideoInfo,
    VideoReader,
    VideoReadError,
    available_backends,
    get_reader,
    probe,
    read_frames,
)

__all__ = [
    "ClipDataset",
    "ClipTransform",
    "DatasetConfig",
    "DatasetError",
    "FrameCountError",
    "LeakageError",
    "SampledIndices",
    "SamplingConfig",
    "SkipReport",
    "SkippedVideo",
    "TransformConfig",
    "VideoIndex",
    "VideoInfo",
    "VideoItem",
    "VideoReadError",
    "VideoReader",
    "assert_no_leakage",
    "available_backends",
    "build_index",
    "collate_clips",
    "csv_index",
    "folder_index",
    "get_reader",
    "group_split",
    "hmdb51_index",
    "leave_one_group_out",
    "load_clip",
    "probe",
    "read_frames",
    "sample_indices",
    "ucf50_index",
    "ucf101_index",
]
