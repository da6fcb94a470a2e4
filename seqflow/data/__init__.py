"""Datasets: generated toy densities, tabular data, audio and time series."""

from seqflow.data.splits import SPLITS
from seqflow.data.toy import TOY_DATASETS, sample_toy

__all__ = ["SPLITS", "TOY_DATASETS", "sample_toy"]
