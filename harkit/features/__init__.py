"""Feature extraction and the feature store: frozen backbones -> cached per-video features.

>>> from harkit.features import FeatureExtractor, extract_features, FeatureDataset
"""

from harkit.features.config import FEATURE_FORMAT_VERSION, StoreConfig, store_config
from harkit.features.dataset import (
    FeatureDataset,
    StoreLocation,
    ensure_features,
    feature_stores_for,
)
from harkit.features.engines import Engine, resolve_engine
from harkit.features.errors import DamagedFeatureError, FeatureExtractorError, FeatureStoreError
from harkit.features.extractor import FeatureExtractor
from harkit.features.manifest import MANIFEST_VERSION, StoreRow
from harkit.features.pipeline import (
    ExtractionReport,
    dataset_video_root,
    extract_features,
    load_flow_clip,
    skip_report_path,
)
from harkit.features.preprocess import Preprocessor, source_key
from harkit.features.store import FeatureStore
from harkit.precision import Precision, resolve_precision

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
