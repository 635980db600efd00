"""Few-label evaluation of a pretrained encoder, and the comparison of finished runs.

- :mod:`.protocols`: the protocol table (frozen head, random encoder, linear
  per layer, kNN, scratch, finetune) and ``evaluate_encoder``, which runs it per
  (label count, seed);
- :mod:`.subsets`: the seeded labeled subsets and the number of classes;
- :mod:`.classifier`: the heads and their in-graph training and accuracy;
- :mod:`.features`: a frozen encoder's features and the kNN score;
- :mod:`.validation`: the validation-split score (tuning, pretraining monitor);
- :mod:`.results`: ``results.json`` / ``results.md`` of a run;
- :mod:`.compare`: one table of finished runs (``python -m keras_ssl.compare``);
- :mod:`.pairing`: which runs drew identical labeled subsets (seed-by-seed pairing);
- :mod:`.expected`: a config's expected results, parsed and checked (``compare --check``);
- :mod:`.reference`: the published figures and label counts we compare against.

Importing the package imports nothing heavy: compare, results and reference
need no TensorFlow; neither do pairing and expected.
"""
