"""Video I/O and clips: readers, sampling, transforms, dataset indexes, splits, clip datasets."""

from harkit._lazy import lazy_exports

_EXPORTS = {
    "video_id": "harkit.data.jobs",
    "shard_indices": "harkit.data.jobs",
    "resolve_shard": "harkit.data.jobs",
    "common_video_root": "harkit.data.jobs",
    "ClipDataset": "harkit.data.clips",
    "ClipTransform": "harkit.data.transforms",
    "DatasetConfig": "harkit.data.datasets",
    "DatasetError": "harkit.data.datasets",
    "FrameCountError": "harkit.data.video",
    "LeakageError": "harkit.data.splits",
    "SampledIndices": "harkit.data.sampling",
    "SamplingConfig": "harkit.data.sampling",
    "SkipReport": "harkit.data.clips",
    "SkippedVideo": "harkit.data.clips",
    "TransformConfig": "harkit.data.transforms",
    "VideoIndex": "harkit.data.datasets",
    "VideoInfo": "harkit.data.video",
    "VideoItem": "harkit.data.datasets",
    "VideoReadError": "harkit.data.video",
    "VideoReader": "harkit.data.video",
    "assert_no_leakage": "harkit.data.splits",
    "available_backends": "harkit.data.video",
    "build_index": "harkit.data.splits",
    "collate_clips": "harkit.data.clips",
    "csv_index": "harkit.data.datasets",
    "folder_index": "harkit.data.datasets",
    "get_reader": "harkit.data.video",
    "group_split": "harkit.data.splits",
    "hmdb51_index": "harkit.data.datasets",
    "leave_one_group_out": "harkit.data.datasets",
    "load_clip": "harkit.data.clips",
    "probe": "harkit.data.video",
    "read_frames": "harkit.data.video",
    "sample_indices": "harkit.data.sampling",
    "ucf101_index": "harkit.data.datasets",
    "ucf50_index": "harkit.data.datasets",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
