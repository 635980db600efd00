"""The methods on the pretexts they need (keras_ssl.methods): per-example loss and
metrics, and a clear refusal of a pretext of the wrong shape. Every registered
method also passes tests/methods/test_method_harness.py."""
import numpy as np
import pytest

from keras_ssl import registry
from keras_ssl.config import Component
from keras_ssl.pretext.rotation import RotationParams, build_rotation
from keras_ssl.pretext.sfa import SFAPairsParams, build_sfa_pairs
from support import as_float, sample

SHAPE = (28, 28, 1)


def _encoder():
    return registry.build("encoder", Component("convnet", registry.params_class("encoder", "convnet")(
        filters=(4, 8), output="gap")), SHAPE)


@pytest.mark.parametrize("pretext,method,params,metric", [
    ("sfa_pairs", "contrastive", {"margin": 10.0, "hidden": 16, "embedding": 8}, "pair_acc"),
    ("reconstruction", "autoencoder", {"channels": 8}, "mse"),
    ("relative_position", "classify", {"hidden": 16}, "position_acc"),
])
def test_method_per_example_loss_and_metrics(digits, pretext, method, params, metric):
    x = as_float(digits(6)[0])
    pre = registry.build("pretext", Component(pretext, registry.params_class("pretext", pretext)()), SHAPE)
    m = registry.build("method", Component(method, registry.params_class("method", method)(**params)),
                       _encoder(), pre)
    views, labels = sample(pre, x)
    loss, metrics = m.per_example(m(views, training=False), labels)
    assert loss.shape == (6,) and np.all(np.isfinite(loss.numpy())) and metrics[metric].shape == (6,)


def test_methods_refuse_pretexts_of_the_wrong_shape():
    rot = build_rotation(RotationParams(), SHAPE)
    with pytest.raises(ValueError, match="2 views"):
        registry.build("method", Component("contrastive", registry.params_class("method", "contrastive")()),
                       _encoder(), rot)
    with pytest.raises(ValueError, match="classification targets"):
        registry.build("method", Component("classify", registry.params_class("method", "classify")()),
                       _encoder(), build_sfa_pairs(SFAPairsParams(), SHAPE))
