"""KerasTuner sweeps, coarse to fine (``python -m keras_ssl.tune``): the tune
config and narrowing (:mod:`.config`) and the sweep (:mod:`.sweep`).
"""
