"""Training data: image sources, TFDS folders, official-recipe patches, the grain pipeline."""

from lapsrn_jax.data.pipeline import (load_validation_set, make_train_dataset,
                                      make_train_iterator, scale_batch_sizes, train_source)
from lapsrn_jax.data.sources import resolve_source
from lapsrn_jax.data.tfds_folder import build_folder_dataset

__all__ = ["build_folder_dataset", "load_validation_set", "make_train_dataset",
           "make_train_iterator", "resolve_source", "scale_batch_sizes", "train_source"]
