"""Temporal heads over feature sequences ``(B, T, D)`` + ``lengths`` -> logits, and fusion.

Nothing here knows about video files: inputs are feature tensors from the feature store or
from an end-to-end network's trunk.
"""

from harkit.heads.fusion import (
    FUSION_MODES,
    ConcatFusion,
    DualLayerAttentionHead,
    TwoStreamHead,
    WeightedAverageFusion,
    concat_features,
)
from harkit.heads.normalize import CenteredHead, NormalizedHead, causal_center, unwrap_head
from harkit.heads.pooling import (
    POOLINGS,
    HeadError,
    TemporalPool,
    check_lengths,
    last_valid,
    length_mask,
    masked_mean,
    masked_softmax,
    masked_step_cross_entropy,
    vote_logits,
)
from harkit.heads.recurrent import (
    CELLS,
    MeanPoolHead,
    RecurrentEncoder,
    RecurrentHead,
    RecurrentStack,
)

__all__ = [
    "CELLS",
    "FUSION_MODES",
    "POOLINGS",
    "CenteredHead",
    "ConcatFusion",
    "DualLayerAttentionHead",
    "HeadError",
    "MeanPoolHead",
    "NormalizedHead",
    "RecurrentEncoder",
    "RecurrentHead",
    "RecurrentStack",
    "TemporalPool",
    "TwoStreamHead",
    "WeightedAverageFusion",
    "causal_center",
    "check_lengths",
    "concat_features",
    "last_valid",
    "length_mask",
    "masked_mean",
    "masked_softmax",
    "masked_step_cross_entropy",
    "unwrap_head",
    "vote_logits",
]
