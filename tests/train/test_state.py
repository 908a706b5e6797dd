"""The train state: what the optimizer decays, nanoGPT's schedule, shapes without memory."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from research.nn import config as config_lib
from research.nn import transformer
from research.train import state as state_lib

MODEL = config_lib.ModelConfig(vocab_size=20, num_layers=1, width=16, num_heads=2, max_length=8)


def tiny_model():
  """A one-block model for the state and step tests."""
  return transformer.Transformer(MODEL, rngs=nnx.Rngs(0))


def optimizer(**changes):
  config = ml_collections.ConfigDict(dict(lr=1e-2, min_lr=1e-3, warmup_steps=2, steps=10,
                                          b1=0.9, b2=0.99, weight_decay=0.1,
                                          max_grad_norm=1.0))
  config.update(changes)
  return state_lib.make_optimizer(config)


def test_weight_decay_touches_two_dimensional_weights_only():
  tx = optimizer(lr=1.0, warmup_steps=1, weight_decay=0.5, max_grad_norm=0.0)
  _, state = state_lib.create(tiny_model(), tx)
  mask = state_lib.decay_mask(state.params)
  flat = {jax.tree_util.keystr(path, simple=True, separator="/").removesuffix("/value"): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(mask)}
  assert flat["blocks/0/attn/query/kernel"] and flat["embed/embedding"], sorted(flat)
  assert not flat["blocks/0/attn/query/bias"] and not flat["final_norm/scale"]
  zero_grads = jax.tree.map(jnp.zeros_like, state.params)
  opt_state = state.opt_state
  _, opt_state = tx.update(zero_grads, opt_state, state.params)  # step 0: warmup, lr 1/2
  updates, _ = tx.update(zero_grads, opt_state, state.params)
  kernel = state.params["blocks"][0]["ffn"]["up"]["kernel"][...]
  np.testing.assert_allclose(updates["blocks"][0]["ffn"]["up"]["kernel"][...], -0.5 * kernel,
                             rtol=1e-6)
  assert float(jnp.max(jnp.abs(updates["final_norm"]["scale"][...]))) == 0.0


def test_schedule_is_nanogpts_warmup_then_cosine():
  config = ml_collections.ConfigDict(dict(lr=1e-3, min_lr=1e-4, warmup_steps=100, steps=2000))
  schedule = state_lib.learning_rate_schedule(config)
  for t in (0, 1, 50, 99):
    np.testing.assert_allclose(schedule(t), 1e-3 * (t + 1) / 101, rtol=1e-5)
  for t in (100, 700, 1999, 2000):
    ratio = (t - 100) / 1900
    expected = 1e-4 + 0.5 * (1 + np.cos(np.pi * ratio)) * (1e-3 - 1e-4)
    np.testing.assert_allclose(schedule(t), expected, rtol=1e-5)


def test_abstract_state_has_the_shapes_of_the_real_one():
  tx = optimizer()
  _, real = state_lib.create(tiny_model(), tx)
  _, abstract = state_lib.abstract_state(tx, tiny_model)
  shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)
  assert shapes(abstract) == shapes(real)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))


def test_cast_floats_leaves_integers_alone():
  cast = state_lib.cast_floats({"w": jnp.ones(2), "step": jnp.int32(3)}, jnp.bfloat16)
  assert (cast["w"].dtype, cast["step"].dtype) == (jnp.bfloat16, jnp.int32)
