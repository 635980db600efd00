"""KerasTuner sweeps, coarse to fine (``python -m keras_ssl.tune``).

In the order a sweep uses them:

- :mod:`.config`: the tune config's schema and strict loading.
- :mod:`.cli`: the command (flags, exit codes); :mod:`.distributed`: chief/worker role.
- :mod:`.sweep`: :class:`~.sweep.Sweep` and :func:`~.sweep.run_sweep`, the stages in order.
- :mod:`.layout`: the tune run directory's paths; :mod:`.resume`: its resume guard.
- :mod:`.space`: narrowing coarse -> fine, grids, KerasTuner hyperparameters.
- :mod:`.oracle`: the oracle per stage and the tuner whose trial is a keras_ssl run.
- :mod:`.trials`: one trial (config, run, score, baseline); :mod:`.hparams`: its HParams.
- :mod:`.results`: a stage's ranked rows; :mod:`.reports`: tables, best config, summary;
  :mod:`.formatting`: how values are shown.
"""
