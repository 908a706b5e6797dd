"""SGD, AdaGrad, RMSProp, Adam and AdamW as chains of the hand-written transforms.

Drop-in twins of `optax.sgd`, `adagrad`, `rmsprop`, `adam` and `adamw` (optax 0.2.8): the same
parameter names, order and defaults, checked with `inspect.signature` in the tests.
"""

from typing import Any, Callable

import jax
import optax

from research.optim import transforms

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def sgd(learning_rate: ScalarOrSchedule, momentum: float | None = None, nesterov: bool = False,
        accumulator_dtype: Any = None) -> optax.GradientTransformationExtraArgs:
  """theta <- theta - eps*g, with heavy-ball (or Nesterov) momentum when `momentum` is set."""
  if momentum is None:
    accumulate = optax.identity()
  else:
    accumulate = transforms.trace(decay=momentum, nesterov=nesterov,
                                  accumulator_dtype=accumulator_dtype)
  return optax.chain(accumulate, transforms.scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> optax.GradientTransformationExtraArgs:
  """theta <- theta - eps*g/sqrt(r), r the running sum of squared gradients."""
  return optax.chain(
      transforms.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
      transforms.scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8,
            initial_scale: float = 0.0, eps_in_sqrt: bool = True, centered: bool = False,
            momentum: float | None = None, nesterov: bool = False,
            bias_correction: bool = False) -> optax.GradientTransformationExtraArgs:
  """theta <- theta - eps*g/sqrt(r), r an exponential average of squared gradients."""
  scale_by = transforms.scale_by_stddev if centered else transforms.scale_by_rms
  if momentum is None:
    accumulate = optax.identity()
  else:
    accumulate = transforms.trace(decay=momentum, nesterov=nesterov)
  return optax.chain(
      scale_by(decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
               bias_correction=bias_correction),
      transforms.scale_by_learning_rate(learning_rate),
      accumulate)


def adam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8, eps_root: float = 0.0, mu_dtype: Any = None, *,
         nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
  """theta <- theta - eps*s_hat/(sqrt(r_hat) + delta)."""
  return optax.chain(
      transforms.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nesterov=nesterov),
      transforms.scale_by_learning_rate(learning_rate))


def adamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, eps_root: float = 0.0, mu_dtype: Any = None,
          weight_decay: ScalarOrSchedule = 1e-4, mask: Any = None, *,
          nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
  """Adam plus decoupled weight decay: theta <- theta - eps*(adam_step + wd*theta)."""
  return optax.chain(
      transforms.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nesterov=nesterov),
      transforms.add_decayed_weights(weight_decay, mask),
      transforms.scale_by_learning_rate(learning_rate))
