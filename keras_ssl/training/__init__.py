"""Pretraining: the loop under a tf.distribute strategy (:mod:`.loop`), optimizer and
schedule (:mod:`.optimizer`), strategy (:mod:`.strategy`), the run directory
(:mod:`.run_dir`), the whole job of ``python -m keras_ssl.train`` (:mod:`.job`)
and the throughput benchmark (:mod:`.bench`).
"""
