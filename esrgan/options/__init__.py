"""YAML option files -> typed, validated options (BasicSR's vocabulary).

``load_options(path, overrides)`` reads a training file, applies dotted ``a.b.c=value`` overrides
(values parsed as YAML), upgrades a few legacy BasicSR key names, resolves what BasicSR resolves at
load time (dataset phases and scale, experiment paths, ``num_gpu: auto``, a missing ``manual_seed``)
and converts everything into the dataclasses below, once: the rest of the code reads their values
and restates no default. Every problem is one :class:`OptionsError` naming the file, the key path
and what was expected.

The conversion is generic: a dataclass field's annotation says what a value may be (``int``,
``float``, ``bool``, ``str``, ``Literal[...]``, unions, lists, tuples, dicts, nested dataclasses),
unknown keys are refused with the allowed ones and a did-you-mean. Network, loss and optimizer
sections are checked against the constructors in ``esrgan.archs``, ``esrgan.losses`` and
:data:`~esrgan.options.sections.OPTIMIZERS` (type names, argument names and the arguments'
annotations), so a typo fails at load, not hours into a run.

Modules, one job each: ``errors`` (:class:`OptionsError`), ``yaml_io`` (the one YAML loader: duplicate
keys refused, ``1e-4`` a float, alias bombs, control characters and non-UTF-8 files refused, ``--set``
overrides), ``convert`` (annotations -> checked values, finite numbers), ``basicsr`` (legacy names and
what BasicSR fills in), ``sections`` (the training file's dataclasses), ``datasets`` (one dataset),
``realesrgan`` (Real-ESRGAN's top-level keys), ``load`` (:func:`load_options`, :func:`save_options`),
``testing`` (test and sweep files). Plain values only: the objects they describe (networks,
optimizers, degradations, datasets) are built by the layers above.

Extending: a new section is a dataclass in ``sections`` plus a field of :class:`Options` (ranges in its
``check(path)``); a new optimizer is an entry of ``sections.OPTIMIZERS``; a new dataset type is an
entry of ``datasets.DATASET_TYPES`` (and of ``DATASET_OPTION_CLASSES`` when it has keys of its own) and
of ``esrgan.data.build.DATASETS``; a new metric name is an entry of ``esrgan.metrics.METRIC_TABLE``
only; networks and losses come from the name -> class tables of ``esrgan.archs`` and ``esrgan.losses``.

Differences from BasicSR's option handling (its files still load unchanged):
- unknown keys, wrong types and unknown network/loss/optimizer/scheduler names are errors
  (BasicSR ignores unknown keys or fails late); duplicate YAML keys are errors; ``1e-4`` is a float
  without ``!!float``;
- old key names are read as the new ones: ``use_flip`` -> ``use_hflip``, ``pretrain_model_g/d`` ->
  ``pretrain_network_g/d``, ``strict_load`` -> ``strict_load_g``, ``VGGStyleDiscriminator128`` ->
  ``VGGStyleDiscriminator`` with ``input_size: 128``;
- ``train.gan_opt.relativistic`` makes the relativistic average GAN explicit: true for
  ``gan_type: ragan`` and (as BasicSR's ESRGANModel) for ESRGANModel unless set to false;
  ``gan_opt.gp_weight`` adds the WGAN-GP penalty;
- overrides are ``--set a.b.c=value`` (YAML value) instead of ``--force_yml a:b:c=value``; they may
  create keys that are valid but absent from the file;
- ``network_g.scale`` / ``upscale`` default to the top-level ``scale`` (BasicSR builds an x4
  RRDBNet unless told); a contradicting value is an error;
- ``num_gpu: auto`` is the GPUs of this process (1 with CUDA, else 0; a launcher starts one process
  per GPU); the keys BasicSR's parser adds at run time (``dist``, ``rank``, ``world_size``,
  ``is_train``) are refused in a file;
- a loss with no positive weight trains nothing: a file whose generator losses all weigh 0 is refused;
- metric types ``calculate_psnr`` / ``calculate_ssim`` are read as ``psnr`` / ``ssim``; a metric
  without ``crop_border`` crops ``scale`` pixels and one without ``test_y_channel`` scores Y;
- ``path.experiments_root`` (when given) is the experiment folder itself, not its parent; paths
  are relative to the working directory, not to the repository;
- ``logger.wandb.project`` logs to Weights & Biases (optional package ``wandb``), ``resume_id`` continues a run;
  ``datasets.*.use_shuffle`` (which BasicSR >= 1.3 ignores) is honoured;
- ours: ``train.{g_warmup_iter, use_amp, amp_dtype, channels_last, grad_clip, compile_g}`` (the precision keys
  default to ``auto``: :mod:`esrgan.training.precision`),
  ``logger.keep_last``, ``val.metrics.*.better``; ``val_freq: 0`` / ``save_checkpoint_freq: 0`` = off;
- the resolved options fill in every default (network, loss and optimizer arguments included) and load
  back to equal options (``Options.to_dict()``, :func:`save_options`); an optimizer argument left out
  takes torch's default (``lr`` included), as in BasicSR.
"""

from esrgan.options.convert import check_kwargs, convert, from_mapping, to_plain
from esrgan.options.datasets import DatasetOptions
from esrgan.options.errors import OptionsError
from esrgan.options.load import load_options, options_from_dict, save_options
from esrgan.options.realesrgan import REAL_KEYS, RealESRGANOptions
from esrgan.options.sections import (
    MODEL_TYPES,
    OPTIMIZER_TYPES,
    OPTIMIZERS,
    SCHEDULER_TYPES,
    DistParams,
    GANOptions,
    LoggerOptions,
    LossOptions,
    MetricOptions,
    NetworkOptions,
    OptimizerOptions,
    Options,
    PathOptions,
    SchedulerOptions,
    TrainOptions,
    ValOptions,
    WandbOptions,
    optimizer_class,
)
from esrgan.options.yaml_io import apply_override, parse_override, parse_yaml

__all__ = [
    "MODEL_TYPES",
    "OPTIMIZERS",
    "OPTIMIZER_TYPES",
    "REAL_KEYS",
    "SCHEDULER_TYPES",
    "DatasetOptions",
    "DistParams",
    "GANOptions",
    "LoggerOptions",
    "LossOptions",
    "MetricOptions",
    "NetworkOptions",
    "OptimizerOptions",
    "Options",
    "OptionsError",
    "PathOptions",
    "RealESRGANOptions",
    "SchedulerOptions",
    "TrainOptions",
    "ValOptions",
    "WandbOptions",
    "apply_override",
    "check_kwargs",
    "convert",
    "from_mapping",
    "load_options",
    "optimizer_class",
    "options_from_dict",
    "parse_override",
    "parse_yaml",
    "save_options",
    "to_plain",
]

