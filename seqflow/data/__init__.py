"""Datasets: generated toy densities, tabular data, audio and time series."""

from seqflow.data.toy import TOY_DATASETS, sample_toy

__all__ = ["TOY_DATASETS", "sample_toy"]
