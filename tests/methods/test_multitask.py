"""Method ``multitask`` (keras_ssl.methods.multitask) against its documented rules:
sum mode's loss is the weighted sum of the tasks' own losses; a weight-0 task's head
gets no gradient; split and alternate route each example (each batch) to one task
and only that task's head learns from it; the heads' settings are checked with their
key path."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl import registry
from keras_ssl.config import ConfigError
from keras_ssl.data.pipeline import pretext_batches
from keras_ssl.methods.base import DatasetFacts
from keras_ssl.pretext.multitask import task_part
from support import as_float, sample, synthetic_digits

SHAPE = (28, 28, 1)
JIGSAW = {"name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8, "permutations": 6}
PRETEXT = {"name": "multitask", "tasks": ["rotation", JIGSAW]}
B = 12


def method_cfg(weights=(1.0, 1.0), mode="sum", pretext=PRETEXT, **train):
    heads = [{"task": t, "method": {"name": "classify", "hidden": 8, "dropout": 0.0}, "weight": w}
             for t, w in zip(("rotation", "jigsaw"), weights)]
    return support.small_cfg({"name": "multitask", "mode": mode, "tasks": heads}, pretext, seed=2,
                             batch_size=B, sample_examples=0, weight_decay=0.0, **train)


def build(cfg):
    pre = registry.build("pretext", cfg.pretext, SHAPE)
    enc = registry.build("encoder", cfg.encoder, SHAPE)
    return pre, registry.build("method", cfg.method, enc, pre, facts=DatasetFacts(num_images=32))


def batch(pre, seed=(1, 2)):
    return sample(pre, as_float(synthetic_digits(B)[0]), seed=seed)


def cross_entropy(logits, y):
    z = logits - logits.max(-1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(-1)))


def head_variables(method, task):
    encoder_ids = {id(v) for v in method.encoder.trainable_variables}
    return [v for v in method.network.get_layer(f"{task}_head").trainable_variables if id(v) not in encoder_ids]


def gradients(method, views, labels, rows=None):
    with tf.GradientTape() as tape:
        loss, _ = method.per_example(method(views, training=True), labels)
        if rows is not None:
            loss = tf.gather(loss, rows)
        total = tf.reduce_sum(loss)
    grads = tape.gradient(total, method.trainable_variables)
    by_id = {id(v): g for v, g in zip(method.trainable_variables, grads)}
    return {t: [by_id[id(v)] for v in head_variables(method, t)] for t in ("rotation", "jigsaw")}, \
        [by_id[id(v)] for v in method.encoder.trainable_variables]


def norm(gs):
    return sum(0.0 if g is None else float(tf.reduce_sum(tf.abs(g))) for g in gs)


def test_sum_loss_is_the_weighted_sum_of_the_single_task_losses():
    """Each task's loss computed separately on the same batch (its own head run alone
    on its views, cross-entropy in NumPy), weighted 0.3 and 2.0: their sum is the loss."""
    pre, method = build(method_cfg((0.3, 2.0)))
    views, labels = batch(pre)
    loss, metrics = method.per_example(method(views, training=False), labels)
    expected = 0.0
    for task, w, target in (("rotation", 0.3, "rotation"), ("jigsaw", 2.0, "permutation")):
        head = method.heads[task]
        logits = head(task_part(views, task), training=False)[target].numpy()
        single = cross_entropy(logits, labels[f"{task}.{target}"].numpy())
        np.testing.assert_allclose(metrics[f"{task}.loss"], single, rtol=1e-5)
        expected = expected + w * single
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert not np.allclose(loss.numpy(), expected / 2.3 * 2)      # the weights matter
    assert method.targets == pre.targets


@pytest.mark.parametrize("mode", ["sum", "split", "alternate"])
def test_a_task_with_weight_zero_gets_no_gradient_in_its_head(mode):
    pre, method = build(method_cfg((1.0, 0.0), mode))
    for seed in [(1, 2), (3, 4)]:
        views, labels = batch(pre, seed)
        heads, encoder = gradients(method, views, labels)
        assert norm(heads["jigsaw"]) == 0.0
        assert norm(heads["rotation"]) > 0 and norm(encoder) > 0


def test_split_routes_each_example_to_one_task_in_proportion_to_the_weights():
    """Weights 1:2 over 12 examples: 4 rotation, 8 jigsaw; an example's loss is its
    task's own (unweighted) loss, and its gradient reaches only its task's head."""
    pre, method = build(method_cfg((1.0, 2.0), "split"))
    views, labels = batch(pre)
    loss, metrics = method.per_example(method(views, training=False), labels)
    rot, jig = metrics["rotation.share"].numpy(), metrics["jigsaw.share"].numpy()
    assert rot.sum() == 4 and jig.sum() == 8 and np.all(rot + jig == 1)
    np.testing.assert_allclose(loss, np.where(rot == 1, metrics["rotation.loss"], metrics["jigsaw.loss"]), rtol=1e-6)
    for i in (int(np.argmax(rot)), int(np.argmax(jig))):
        heads, _ = gradients(method, views, labels, rows=[i])
        mine, other = ("rotation", "jigsaw") if rot[i] else ("jigsaw", "rotation")
        assert norm(heads[mine]) > 0 and norm(heads[other]) == 0.0, (i, mine)


def test_alternate_gives_each_batch_one_task_drawn_by_the_weights():
    """One task per batch, drawn from the batch's seed with probability w / sum(w):
    over 200 batches at weights 1:3 both tasks come up, jigsaw about 3 times in 4."""
    pre, method = build(method_cfg((1.0, 3.0), "alternate"))
    chosen = []
    x = as_float(synthetic_digits(B)[0])
    for s in range(200):
        _, labels = sample(pre, x, seed=(s, 7))
        coef = method.task_coefficients(labels)
        rot, jig = coef["rotation"].numpy(), coef["jigsaw"].numpy()
        assert np.all(rot == rot[0]) and np.all(rot + jig == 1)
        chosen.append("rotation" if rot[0] else "jigsaw")
    share = chosen.count("jigsaw") / len(chosen)
    assert 0.65 < share < 0.85, share                           # 3 sigma of a binomial(200, 0.75)


def test_alternate_step_trains_only_the_selected_tasks_head(tmp_path):
    """One optimizer step (plain SGD, no weight decay): the encoder and the drawn task's
    head change, the other head does not; at the next step, the other task is drawn."""
    cfg = method_cfg((1.0, 1.0), "alternate", steps=1, steps_per_execution=1, momentum=0.0,
                     learning_rate=0.1)
    images, _ = synthetic_digits(32)
    t = support.trainer(cfg, tmp_path / "a")
    views, labels = next(iter(pretext_batches(images, t.pretext, B, cfg.seed, 0, 1)))
    coef = t.method.task_coefficients(labels)
    selected = "rotation" if coef["rotation"].numpy()[0] else "jigsaw"
    before = {task: [v.numpy().copy() for v in head_variables(t.method, task)] for task in ("rotation", "jigsaw")}
    enc_before = [v.numpy().copy() for v in t.method.encoder.trainable_variables]
    t.train(images)
    changed = {task: any(not np.array_equal(v.numpy(), w) for v, w in zip(head_variables(t.method, task), before[task]))
               for task in before}
    other = "jigsaw" if selected == "rotation" else "rotation"
    assert changed[selected] and not changed[other], (selected, changed)
    assert any(not np.array_equal(v.numpy(), w) for v, w in zip(t.method.encoder.trainable_variables, enc_before))


def test_heads_are_checked_with_their_key_path():
    with pytest.raises(ConfigError, match=r"'method\.tasks\[1\]\.weight' must be >= 0"):
        support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation"}, {"task": "jigsaw", "weight": -1}]},
                          PRETEXT)
    with pytest.raises(ConfigError, match=r"'method\.tasks\[0\]\.method\.hidden' must be an integer"):
        support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation",
                                                           "method": {"name": "classify", "hidden": "x"}}]},
                          PRETEXT)
    with pytest.raises(ConfigError, match=r"unknown key 'method\.tasks\[0\]\.heads'"):
        support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation", "heads": 2}]}, PRETEXT)
    with pytest.raises(ConfigError, match=r"'method\.mode' must be one of"):
        support.small_cfg({"name": "multitask", "mode": "round_robin"}, PRETEXT)
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.task: 'rotation' is already tasks\[0\]"):
        support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation"}, {"task": "rotation"}]}, PRETEXT)
    with pytest.raises(ConfigError, match="at least one weight must be > 0"):
        support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation", "weight": 0}]}, PRETEXT)


def test_builder_refuses_heads_that_do_not_match_the_tasks():
    cfg = support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation"}, {"task": "egomotion"}]}, PRETEXT)
    with pytest.raises(ValueError, match=r"method\.tasks\[1\]\.task: 'egomotion'.*no head for \['jigsaw'\]"):
        build(cfg)
    with pytest.raises(ValueError, match="needs the 'multitask' pretext"):
        build(support.small_cfg({"name": "multitask"}, {"name": "rotation"}))
    # A head method with state (a memory bank) is refused, naming the task.
    stateful = support.small_cfg({"name": "multitask", "tasks": [
        {"task": "rotation"}, {"task": "augment", "method": {"name": "npid", "negatives": 4}}]},
        {"name": "multitask", "tasks": ["rotation", "augment"]})
    with pytest.raises(ValueError, match=r"method\.tasks\[1\] \(augment\): method 'npid' keeps state"):
        build(stateful)
    # A head method that cannot use its task's pretext says so, with the task.
    wrong = support.small_cfg({"name": "multitask", "tasks": [
        {"task": "rotation"}, {"task": "augment", "method": "classify"}]},
        {"name": "multitask", "tasks": ["rotation", "augment"]})
    with pytest.raises(ValueError, match=r"method\.tasks\[1\] \(augment, method 'classify'\)"):
        build(wrong)


def test_sum_mode_training_lowers_every_tasks_loss(tmp_path):
    """A short run (80 steps of 12 images, a flattening convnet: GAP would discard the
    layout both tasks read) in sum mode learns: on a fixed batch, every task's loss
    after training is below its loss before."""
    cfg = method_cfg((1.0, 1.0), "sum", steps=80, steps_per_execution=20, learning_rate=0.02)
    cfg = dataclasses.replace(cfg, encoder=support.small_cfg(
        encoder={"name": "convnet", "filters": [4, 8], "output": "flatten"}).encoder)
    images, _ = synthetic_digits(64)
    t = support.trainer(cfg, tmp_path / "s")
    views, labels = batch(t.pretext, (9, 9))

    def losses():
        m = t.method.per_example(t.method(views), labels)[1]
        return {task: float(m[f"{task}.loss"].numpy().mean()) for task in ("rotation", "jigsaw")}

    before = losses()
    t.train(images)
    after = losses()
    assert all(after[k] < before[k] for k in before), (before, after)


def test_a_sequence_pretext_cannot_be_a_task():
    """Every task's views come from one batch of images; a pretext that samples frame pairs
    of sequences (odometry, sfa_time, shuffle_learn) is refused by name, not left to fail
    with a TypeError when the first batch is made."""
    for name in ("odometry", "sfa_time", "shuffle_learn"):
        comp = support.small_cfg({"name": "multitask", "tasks": [{"task": "rotation"}, {"task": name}]},
                                 {"name": "multitask", "tasks": ["rotation", name]}).pretext
        with pytest.raises(ConfigError, match=rf"pretext\.tasks\[1\] \({name}\): .*makes its own batches"):
            registry.build("pretext", comp, (28, 28, 1))
