"""The kNN monitor during pretraining (keras_ssl.training.job.knn_monitor, every method):
scored at its cadence, logged to TensorBoard."""
import tensorflow as tf

from keras_ssl.config import config_from_dict
from support import trainer


def test_knn_monitor_logs_during_pretraining(tmp_path, digits):
    from keras_ssl.data import ImageSet
    from keras_ssl.training.job import knn_monitor

    images, labels = digits(1200)      # 1,000 labeled voters + 100 validation images
    cfg = config_from_dict({
        "name": "m", "seed": 1, "encoder": {"name": "convnet", "filters": [4], "output": "gap"},
        "pretext": {"name": "rotation"}, "method": {"name": "classify", "hidden": 8, "dropout": 0.0},
        "data": {"validation_images": 100},
        "train": {"steps": 4, "batch_size": 8, "steps_per_execution": 2, "monitor_every": 2,
                  "sample_examples": 0}})
    monitor = knn_monitor(cfg, ImageSet(images, labels))
    t = trainer(cfg, tmp_path, num_images=None)
    s = t.train(images, monitor=monitor)
    assert [m["step"] for m in s["monitor"]] == [2, 4]
    assert all(0.0 <= m["knn_val"] <= 1.0 for m in s["monitor"])
    tags = set()
    for f in (tmp_path / "tb" / "pretrain").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert "knn_val" in tags
