"""The optimiser: optax SGD with momentum (the official recipe) or Adam, built from `config.optim`.

Official MatConvNet update (per parameter p with learning-rate multiplier m_p; `g` = gradient of the
loss already divided by the batch size):

    s <- momentum * s - (g + wd * w)   (coupled weight decay, on weights and biases)
    w <- w + lr * m_p * s              (m_p = 1 for weights and the image upsampler, 0.1 for biases)

which is `add_decayed_weights(wd) -> sgd(lr * m_p, momentum)` in optax (the decay is applied
*before* the momentum). The bias multiplier is a second branch of `optax.multi_transform` with its
learning rate scaled. The schedule is `lr * factor ** floor(step / decay_every)`, floored at
`min_learning_rate`.
"""

import jax
import ml_collections
import optax

WEIGHT, BIAS = "weight", "bias"
OPTIMIZERS = ("sgd", "adam")


def learning_rate_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """Step-decay schedule: `learning_rate * decay_factor ** floor(step / decay_every)` >= min_lr.

  `decay_every = 0` keeps the learning rate constant.
  """
  if cfg.decay_every <= 0:
    return optax.constant_schedule(cfg.learning_rate)
  return optax.exponential_decay(
      init_value=cfg.learning_rate, transition_steps=cfg.decay_every,
      decay_rate=cfg.decay_factor, staircase=True, end_value=cfg.min_learning_rate)


def param_labels(params):
  """`"bias"` for every leaf named `bias`, `"weight"` for the rest (kernels, CMS theta)."""
  def label(path, _):
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", None))
    return BIAS if name == "bias" else WEIGHT
  return jax.tree_util.tree_map_with_path(label, params)


def _branch(cfg: ml_collections.ConfigDict, schedule: optax.Schedule,
            lr_multiplier: float) -> optax.GradientTransformation:
  lr = schedule if lr_multiplier == 1 else (lambda step: schedule(step) * lr_multiplier)
  parts = []
  if cfg.weight_decay:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  if cfg.name == "sgd":
    parts.append(optax.sgd(lr, momentum=cfg.momentum or None))
  elif cfg.name == "adam":
    parts.append(optax.adam(lr))
  else:
    raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")
  return optax.chain(*parts)


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimiser for `config.optim` (fields: name, learning_rate, momentum, decay_factor,
  decay_every, min_learning_rate, weight_decay, bias_lr_multiplier)."""
  schedule = learning_rate_schedule(cfg)
  if cfg.bias_lr_multiplier == 1:
    return _branch(cfg, schedule, 1.0)
  return optax.multi_transform(
      {WEIGHT: _branch(cfg, schedule, 1.0), BIAS: _branch(cfg, schedule, cfg.bias_lr_multiplier)},
      param_labels)
