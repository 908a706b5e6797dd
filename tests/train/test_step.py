import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from research.nn import config as config_lib
from research.nn import transformer
from research.train import state as state_lib
from research.train import step as step_lib


def _setup(**changes):
  model_config = config_lib.ModelConfig(vocab_size=20, num_layers=1, width=16, num_heads=2,
                                        max_length=8)
  config = ml_collections.ConfigDict(dict(lr=1e-2, min_lr=1e-3, warmup_steps=2, steps=10,
                                          b1=0.9, b2=0.99, weight_decay=0.1,
                                          max_grad_norm=1.0))
  config.update(changes)
  tx = state_lib.make_optimizer(config)
  graphdef, state = state_lib.create(transformer.Transformer(model_config, rngs=nnx.Rngs(0)), tx)
  return graphdef, tx, state


def _batch(a, b, seed=0):
  tokens = jax.random.randint(jax.random.key(seed), (a * b, 9), 0, 20)
  return tokens[:, :-1].reshape(a, b, 8), tokens[:, 1:].reshape(a, b, 8)


def test_two_micro_batches_equal_one_batch_of_twice_the_size():
  graphdef, tx, state = _setup()
  inputs, targets = _batch(1, 8)
  whole, m_whole = step_lib.make_train_step(graphdef, tx, dropout=False)(
      jax.tree.map(jnp.copy, state), inputs, targets)
  split, m_split = step_lib.make_train_step(graphdef, tx, dropout=False)(
      state, inputs.reshape(2, 4, 8), targets.reshape(2, 4, 8))
  np.testing.assert_allclose(m_split["loss"], m_whole["loss"], rtol=1e-6)
  np.testing.assert_allclose(m_split["grad_norm"], m_whole["grad_norm"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(split.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weight_decay_touches_two_dimensional_weights_only():
  graphdef, tx, state = _setup(lr=1.0, warmup_steps=1, weight_decay=0.5, max_grad_norm=0.0)
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


def test_bfloat16_compute_keeps_float32_master_weights_and_close_loss():
  graphdef, tx, state = _setup()
  inputs, targets = _batch(1, 4)
  _, m32 = step_lib.make_train_step(graphdef, tx, dropout=False)(
      jax.tree.map(jnp.copy, state), inputs, targets)
  new, m16 = step_lib.make_train_step(graphdef, tx, "bfloat16", dropout=False)(
      state, inputs, targets)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new.params))
  np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)
  assert int(new.step) == 1


def test_schedule_is_nanogpts_warmup_then_cosine():
  config = ml_collections.ConfigDict(dict(lr=1e-3, min_lr=1e-4, warmup_steps=100, steps=2000))
  schedule = state_lib.learning_rate_schedule(config)
  for t in (0, 1, 50, 99):
    np.testing.assert_allclose(schedule(t), 1e-3 * (t + 1) / 101, rtol=1e-5)
  for t in (100, 700, 1999, 2000):
    ratio = (t - 100) / 1900
    expected = 1e-4 + 0.5 * (1 + np.cos(np.pi * ratio)) * (1e-3 - 1e-4)
    np.testing.assert_allclose(schedule(t), expected, rtol=1e-5)
