"""Feature extraction and the feature store: frozen backbones -> cached per-video features.

>>> from harkit.features import FeatureExtractor, extract_features, FeatureDataset
"""

from harkit.features.dataset import (
    FeatureDataset,
    StoreLocation,
    ensure_features,
    feature_stores_for,
)
from harkit.features.extractor import (
    Engine,
    FeatureExtractor,
    FeatureExtractorError,
    Precision,
    Preprocessor,
    resolve_engine,
    resolve_precision,
    source_key,
)
from harkit.features.pipeline import (
    ExtractionReport,
    dataset_video_root,
    extract_features,
    load_flow_clip,
    skip_report_path,
)
from harkit.features.store import (
    FEATURE_FORMAT_VERSION,
    MANIFEST_VERSION,
    DamagedFeatureError,
    FeatureStore,
    FeatureStoreError,
    StoreConfig,
    StoreRow,
    store_config,
)

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "MANIFEST_VERSION",
    "DamagedFeatureError",
    "Engine",
    "ExtractionReport",
    "FeatureDataset",
    "FeatureExtractor",
    "FeatureExtractorError",
    "FeatureStore",
    "FeatureStoreError",
    "Precision",
    "Preprocessor",
    "StoreConfig",
    "StoreLocation",
    "StoreRow",
    "dataset_video_root",
    "ensure_features",
    "extract_features",
    "feature_stores_for",
    "load_flow_clip",
    "resolve_engine",
    "resolve_precision",
    "skip_report_path",
    "source_key",
    "store_config",
]
