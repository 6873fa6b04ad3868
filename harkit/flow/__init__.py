"""Optical flow: methods (TV-L1, Farneback, DIS, RAFT), uint8 storage, extraction, datasets."""

from harkit._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_BOUND": "harkit.flow.storage",
    "FLOW_METHODS": "harkit.flow.methods",
    "FlowConfig": "harkit.flow.extract",
    "FlowDataset": "harkit.flow.dataset",
    "FlowFile": "harkit.flow.storage",
    "FlowFileError": "harkit.flow.storage",
    "FlowMethod": "harkit.flow.methods",
    "FlowMethodError": "harkit.flow.methods",
    "FlowSummary": "harkit.flow.extract",
    "RaftFlow": "harkit.flow.methods",
    "SampledFlow": "harkit.flow.sampled",
    "TooFewFramesError": "harkit.flow.sampled",
    "check_flow_file": "harkit.flow.storage",
    "compute_dataset_flow": "harkit.flow.extract",
    "compute_flow": "harkit.flow.methods",
    "compute_pairs": "harkit.flow.methods",
    "decode_flow": "harkit.flow.storage",
    "flow_file_path": "harkit.flow.storage",
    "flow_to_tensor": "harkit.flow.dataset",
    "get_flow_method": "harkit.flow.methods",
    "load_flow": "harkit.flow.storage",
    "pair_frames": "harkit.flow.sampled",
    "quantize_flow": "harkit.flow.storage",
    "raft_weights_path": "harkit.flow.methods",
    "save_flow": "harkit.flow.storage",
    "skip_report_path": "harkit.flow.extract",
    "stored_video_root": "harkit.flow.extract",
    "to_gray": "harkit.flow.extract",
    "video_flow": "harkit.flow.extract",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
