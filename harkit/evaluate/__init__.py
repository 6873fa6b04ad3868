"""Metrics, confusion matrices, reports, split averaging and ablation tables over plain arrays."""

from harkit.evaluate.errors import EvaluationError
from harkit.evaluate.metrics import (
    HEADLINE,
    ClassMetrics,
    Metrics,
    aggregate_clips,
    compute_metrics,
)
from harkit.evaluate.plots import normalize_rows, plot_confusion_matrix
from harkit.evaluate.reports import REPORT_FILES, format_prediction, write_report
from harkit.evaluate.tables import average_over_splits, write_comparison_table, write_splits_report

__all__ = [
    "HEADLINE",
    "REPORT_FILES",
    "ClassMetrics",
    "EvaluationError",
    "Metrics",
    "aggregate_clips",
    "average_over_splits",
    "compute_metrics",
    "format_prediction",
    "normalize_rows",
    "plot_confusion_matrix",
    "write_comparison_table",
    "write_report",
    "write_splits_report",
]
