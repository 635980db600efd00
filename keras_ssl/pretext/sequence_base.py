"""The base of pretexts on frame sequences with poses (``odometry``, ``sfa_time``).

A subclass builds its frame-pair index from the sequences in :meth:`pairs_of` (which pairs,
which labels, which draw weights); this base checks the data, keeps the index for
:meth:`Pretext.save`, and makes the batches with :func:`keras_ssl.data.frames.frame_pair_batches`
(frames decoded in tf.data, one random crop of the encoder's input size from both frames).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from keras_ssl.config import ConfigError
from keras_ssl.data.frames import FramePairs, frame_pair_batches
from keras_ssl.data.sequences import SequenceData
from keras_ssl.files import write_json_atomic
from keras_ssl.pretext.base import Pretext


class SequencePretext(Pretext):
    """Views ``first``, ``second`` (a pair's frames i then j; ``views``: other names, one
    per frame of the index's tuples); subclasses set ``name`` (the registry name, for
    messages) and ``record_file`` (what :meth:`save` writes in the run directory: the
    index's sequences and frame count, and :meth:`facts`), and define :meth:`pairs_of`."""
    name = "sequence"
    record_file = "sequence_pairs.json"

    def __init__(self, params, image_shape, targets, views=("first", "second")):
        super().__init__(view_names=tuple(views), view_shape=tuple(image_shape), targets=targets)
        self.params = params
        self.pairs: Optional[FramePairs] = None
        self.frame_cache_mb = 0     # data.frame_cache_mb, set by prepare

    def pairs_of(self, data: SequenceData) -> FramePairs:
        raise TypeError(f"{type(self).__name__} must define pairs_of")

    def prepare(self, data) -> FramePairs:
        if not isinstance(data, SequenceData):
            raise ConfigError(f"pretext {self.name!r} needs frame sequences with poses: data.dataset "
                              f"'kitti_odometry' or 'tum_rgbd'")
        if data.channels != self.view_shape[2]:
            raise ConfigError(f"data.channels is {data.channels}, the encoder input has "
                              f"{self.view_shape[2]}")
        self.pairs = self.pairs_of(data)
        self.frame_cache_mb = data.frame_cache_mb
        return self.pairs

    def validation_index(self, data: SequenceData) -> FramePairs:
        """The index of held-out sequences (``data.validation_sequences``), labeled as the
        training index is (after :meth:`prepare`: a subclass whose classes are fitted on
        the training pairs labels these with them). Default: :meth:`pairs_of` on them."""
        if self.pairs is None:
            raise RuntimeError(f"{type(self).__name__}.validation_index before prepare")
        return self.pairs_of(data)

    def facts(self, pairs: FramePairs) -> dict:
        """What a run keeps of this pretext's index (counts, classes, settings); JSON-ready."""
        return {"pairs": len(pairs)}

    def save(self, run_dir) -> None:
        if self.pairs is not None:
            write_json_atomic(Path(run_dir) / self.record_file,
                              {**self.facts(self.pairs), "sequences": list(self.pairs.names),
                               "frames": len(self.pairs.paths)})

    def batches(self, data, batch_size, seed, start_step, end_step, threads=1):
        if not isinstance(data, FramePairs):
            raise ConfigError(f"pretext {self.name!r} samples frame pairs (its prepare's output)")
        return frame_pair_batches(data, batch_size, seed, start_step, end_step,
                                  crop=self.view_shape[:2], threads=max(threads, 2) if threads else 0,
                                  views=self.view_names, cache_mb=self.frame_cache_mb)

    def __call__(self, images, index, seed):
        raise TypeError(f"pretext {self.name!r} makes its batches from frame pairs (batches), "
                        f"not from a batch of single images")
