"""The kNN monitor during pretraining (keras_ssl.training.job.knn_monitor, every method):
scored at its cadence on the encoder as it is at that step, logged to the summary and
TensorBoard, and the number knn_validation gives for that encoder."""
import keras
import numpy as np
import tensorflow as tf

from keras_ssl.config import config_from_dict
from keras_ssl.data import ImageSet, split_validation
from support import trainer


def monitor_cfg(validation_images=100, **eval_):
    return config_from_dict({
        "name": "m", "seed": 1, "encoder": {"name": "convnet", "filters": [4], "output": "gap"},
        "pretext": {"name": "rotation"}, "method": {"name": "classify", "hidden": 8, "dropout": 0.0},
        "data": {"validation_images": validation_images},
        "train": {"steps": 4, "batch_size": 8, "steps_per_execution": 2, "monitor_every": 2,
                  "sample_examples": 0, "learning_rate": 0.1},
        "eval": eval_})


def tb_scalars(run_dir, tag):
    """{step: value} of the scalar ``tag`` in the run's pretraining TensorBoard events."""
    out = {}
    for f in sorted((run_dir / "tb" / "pretrain").glob("events.out.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            for v in e.summary.value:
                if v.tag == tag:
                    out[e.step] = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
    return out


def test_knn_monitor_logs_the_score_of_the_encoder_at_each_monitored_step(tmp_path, digits):
    """Monitored at steps 2 and 4; each knn_val (summary and TensorBoard) equals
    knn_validation(cfg, train, encoder) recomputed afterwards on a copy of the encoder's
    weights at that step, and the last one equals it on the trained encoder saved as .keras
    and loaded again: the monitor scores the encoder being trained, as it is then."""
    from keras_ssl.training.job import knn_monitor, knn_validation

    images, labels = digits(1200)      # 1,000 labeled voters + 100 validation images
    cfg = monitor_cfg()
    train = ImageSet(images, labels)
    monitor = knn_monitor(cfg, train)
    t = trainer(cfg, tmp_path, num_images=None)
    initial = [w.copy() for w in t.encoder.get_weights()]
    seen = []

    def spy(encoder):
        assert encoder is t.encoder
        seen.append([w.copy() for w in encoder.get_weights()])
        return monitor(encoder)

    s = t.train(images, monitor=spy)
    assert [m["step"] for m in s["monitor"]] == [2, 4] and len(seen) == 2
    assert set(s["monitor"][0]) == {"step", "knn_val"}
    # The encoder moved between the calls: the step-2 weights are neither the initial nor the final ones.
    final = t.encoder.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(seen[1], final))
    assert not all(np.array_equal(a, b) for a, b in zip(seen[0], initial))
    assert not all(np.array_equal(a, b) for a, b in zip(seen[0], final))
    copy = keras.models.clone_model(t.encoder)
    for logged, w in zip(s["monitor"], seen):
        copy.set_weights(w)
        assert logged["knn_val"] == knn_validation(cfg, train, copy)
    path = tmp_path / "encoder.keras"
    t.encoder.save(path)
    assert s["monitor"][-1]["knn_val"] == knn_validation(cfg, train, keras.models.load_model(path))
    logged = tb_scalars(tmp_path, "knn_val")
    assert logged.keys() == {2, 4}
    for m in s["monitor"]:
        assert np.isclose(logged[m["step"]], m["knn_val"], rtol=1e-6)


class CodeEncoder(keras.Model):
    """Features from the class code in pixel (0, 0) (100 * class): one-hot of the class
    (``mode="class"``) or the same vector for every image (``mode="constant"``)."""

    def __init__(self, mode):
        super().__init__(name=f"code_{mode}")
        self.mode = mode

    def call(self, x, training=False):
        c = tf.cast(tf.round(x[:, 0, 0, 0] * 255.0 / 100.0), tf.int32)
        if self.mode == "constant":
            return tf.ones([tf.shape(x)[0], 4])
        return tf.one_hot(c, 4)


def coded_set(val_labels, seed=1):
    """150 images of 3 classes, the class coded in pixel (0, 0): the pool outside the
    validation split (30 images, split seed ``seed``) has 40 per class, in turn by index; the
    split has ``val_labels``."""
    n, n_val = 150, 30
    pool, val = split_validation(ImageSet(np.arange(n), np.zeros(n)), n_val, seed)   # image ids
    labels = np.zeros(n, np.int64)
    labels[pool.images] = np.arange(len(pool)) % 3
    labels[val.images] = val_labels
    images = np.zeros((n, 28, 28, 1), np.uint8)
    images[:, 0, 0, 0] = 100 * labels
    return ImageSet(images, labels)


def test_knn_monitor_is_1_on_separating_features_and_the_majority_rate_on_constant_ones():
    """Through knn_monitor / knn_validation on the 30 validation images against the 120
    voters outside them: features that separate the classes perfectly score 1.0; the same
    features with the validation labels shifted by one class score 0.0 (the split's own
    labels are what is scored); a constant features function scores the rate of the
    validation split's majority class (every similarity ties: every image gets one class,
    the first in index order, which this set makes the majority one)."""
    from keras_ssl.training.job import knn_monitor, knn_validation, monitor_labels

    val_labels = np.random.default_rng(0).permutation([0] * 15 + [1] * 9 + [2] * 6)
    train = coded_set(val_labels)
    shares = {c: np.mean(val_labels == c) for c in range(3)}
    assert shares == {0: 0.5, 1: 0.3, 2: 0.2}
    for k in (10, 120):
        cfg = monitor_cfg(validation_images=30, knn_k=k)
        assert monitor_labels(cfg, train) == 120                    # every image outside the split
        assert knn_monitor(cfg, train)(CodeEncoder("class")) == {"knn_val": 1.0}
        assert knn_validation(cfg, train, CodeEncoder("constant")) == shares[0] == max(shares.values())
    # The split's labels shifted by one class (its images keep their codes): all wrong.
    shifted = ImageSet(train.images, train.labels.copy())
    pool, val = split_validation(ImageSet(np.arange(150), np.zeros(150)), 30, 1)
    shifted.labels[val.images] = (val_labels + 1) % 3
    assert knn_validation(monitor_cfg(validation_images=30), shifted, CodeEncoder("class")) == 0.0
