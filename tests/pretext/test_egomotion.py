import numpy as np
import tensorflow as tf

from keras_ssl.pretext.egomotion import EgomotionParams, apply_transform, build_egomotion


def dot_image(x, y, size=28):
    img = np.zeros((1, size, size, 1), np.float32)
    img[0, y, x, 0] = 1.0
    return tf.constant(img)


def peak(img):
    a = img.numpy()[0, ..., 0]
    y, x = np.unravel_index(np.argmax(a), a.shape)
    return x, y


def test_translation_moves_content_by_label():
    moved = apply_transform(dot_image(10, 12), tf.constant([3]), tf.constant([-2]), tf.constant([0]))
    assert peak(moved) == (13, 10)


def test_rotation_is_about_the_centre_and_clockwise():
    # 90 degrees: a dot right of the centre goes below it (y axis points down).
    c = 13.5
    moved = apply_transform(dot_image(20, 13), tf.constant([0]), tf.constant([0]), tf.constant([90]),
                            interpolation="NEAREST")
    x, y = peak(moved)
    assert abs(x - (c - (13 - c))) <= 1 and abs(y - (c + (20 - c))) <= 1


def test_labels_describe_the_applied_transform(digits):
    images, _ = digits(32)
    x = tf.constant(images, tf.float32) / 255.0
    pre = build_egomotion(EgomotionParams(), (28, 28, 1))
    views, labels = pre(x, tf.range(32, dtype=tf.int64), tf.constant([1, 2]))
    first, second = views["first"].numpy(), views["second"].numpy()
    assert np.array_equal(first, x.numpy())
    tx, ty, deg = labels["tx_px"], labels["ty_px"], labels["rz_deg"]
    # Undo: shift back, then rotate back; compare away from the border.
    undone = apply_transform(apply_transform(tf.constant(second), -tx, -ty, tf.zeros_like(deg)),
                             tf.zeros_like(tx), tf.zeros_like(ty), -deg).numpy()
    redone = apply_transform(x, tx, ty, deg).numpy()
    assert np.allclose(redone, second, atol=1e-6)
    centre = (slice(None), slice(9, 19), slice(9, 19))
    err = np.abs(undone[centre] - first[centre]).mean()
    wrong = apply_transform(tf.constant(second), tx, ty, deg).numpy()   # undo in the wrong direction
    assert err < 0.08 < np.abs(wrong[centre] - first[centre]).mean()
    # Class ids follow the documented encoding.
    assert np.array_equal(labels["tx"], tx + 3) and np.array_equal(labels["ty"], ty + 3)
    d = deg.numpy()
    assert np.all(d != 0) and np.all(np.abs(d) <= 30)
    expected_bin = (d + 30 - (d > 0)) // 3
    assert np.array_equal(labels["rz"].numpy(), expected_bin)
    assert set(pre.targets) == {"tx", "ty", "rz"} and pre.targets["rz"] == 20


def test_sampler_is_deterministic_per_seed(digits):
    images, _ = digits(16)
    x = tf.constant(images, tf.float32) / 255.0
    pre = build_egomotion(EgomotionParams(max_shift_px=2, max_rotation_deg=12, rotation_bins=6), (28, 28, 1))
    idx = tf.range(16, dtype=tf.int64)
    a = pre(x, idx, tf.constant([5, 6]))[1]
    b = pre(x, idx, tf.constant([5, 6]))[1]
    c = pre(x, idx, tf.constant([5, 7]))[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert a["tx"].numpy().max() <= 4 and a["rz"].numpy().max() <= 5 and pre.targets["tx"] == 5
