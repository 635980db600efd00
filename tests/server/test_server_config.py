"""Parsing of models.config and the image header sniffing behind the pixel limit."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.server.model_config import parse_models_config
from keras_ssl.server.validation import image_dimensions
from support import images, png


def test_models_config_parsing():
    cfgs = parse_models_config("""
        model_config_list {
          config { name: 'a' base_path: '/m/a' model_platform: 'tensorflow'
                   model_version_policy { specific { versions: 1 versions: 3 } }
                   version_labels { key: 'stable' value: 1 } }
          config { name: 'b' base_path: '/m/b' model_version_policy { all {} } }
        }""")
    assert [(c.name, c.policy, c.specific, c.labels) for c in cfgs] == [
        ("a", "specific", (1, 3), {"stable": 1}), ("b", "all", (), {})]
    for bad in ("model_config_list { config { name: 'a/../b' base_path: '/x' } }",
                "model_config_list { config { name: 'a' } }", "nonsense {"):
        with pytest.raises(ValueError):
            parse_models_config(bad)


def test_image_dimensions_sniffing():
    x = images(1)[0]
    assert image_dimensions(png(x)) == (28, 28)
    jpeg = tf.io.encode_jpeg(np.zeros((30, 40, 3), np.uint8)).numpy()
    assert image_dimensions(jpeg) == (40, 30)
    assert image_dimensions(b"junk") is None and image_dimensions(b"\xff\xd8\xff") is None
