"""The names of a data set's three splits, in their order: defined once for every layer."""

SPLITS = ("train", "val", "test")
