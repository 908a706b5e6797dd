"""Checkpoints: the newest N and the single best by eval_loss, restored as saved."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.train import checkpoint as checkpoint_lib


def _state(step):
  return {"step": jnp.int32(step), "w": jnp.full((2, 3), float(step))}


def test_the_last_n_and_the_best_are_kept_and_restored(tmp_path):
  checkpoints = checkpoint_lib.Checkpoints(tmp_path, keep=2)
  eval_losses = {1: 3.0, 2: 1.0, 3: 2.0, 4: 5.0}
  for step, loss in eval_losses.items():
    checkpoints.save(step, _state(step), {"eval_loss": loss, "loss": 0.5})
  checkpoints.save(5, _state(5))  # no metrics: a "last" checkpoint only
  checkpoints.wait()
  assert checkpoints.last.all_steps() == [4, 5] and checkpoints.latest_step() == 5
  assert checkpoints.best_step() == 2 and checkpoints.best.all_steps() == [2]
  abstract = checkpoint_lib.abstract_like(_state(0))
  np.testing.assert_array_equal(checkpoints.restore(abstract)["w"], np.full((2, 3), 5.0))
  assert int(checkpoints.restore(abstract, best=True)["step"]) == 2
  checkpoints.close()
  # the module-level restore reopens the folder
  assert int(checkpoint_lib.restore(tmp_path, abstract, step=4)["step"]) == 4
  assert int(checkpoint_lib.restore(tmp_path, abstract, best=True)["step"]) == 2


def test_restoring_from_an_empty_folder_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=re.escape(f"no checkpoint in {tmp_path}.")):
    checkpoint_lib.restore(tmp_path, checkpoint_lib.abstract_like(_state(0)))


def test_a_checkpoint_of_another_model_is_named_and_keys_still_fit(tmp_path):
  # PRNG keys are saved as their raw data (shape (2,)); a state holding one must still fit.
  state = {"w": jnp.ones((2, 3)), "key": jax.random.key(0)}
  checkpoints = checkpoint_lib.Checkpoints(tmp_path, best_metric=None)
  checkpoints.save(1, state)
  checkpoints.wait()
  checkpoints.close()
  restored = checkpoint_lib.restore(tmp_path, checkpoint_lib.abstract_like(state))
  np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                jax.random.key_data(state["key"]))
  other = checkpoint_lib.abstract_like({"w": jnp.ones((2, 4)), "key": jax.random.key(0)})
  with pytest.raises(ValueError, match=re.escape(
      f"{tmp_path / 'last' / '1'} holds a checkpoint of another model: w is (2, 3) there "
      "and (2, 4) in this run")):
    checkpoint_lib.restore(tmp_path, other)
  with pytest.raises(ValueError, match=r"its w has no place in this run"):
    checkpoint_lib.restore(tmp_path, checkpoint_lib.abstract_like({"key": jax.random.key(0)}))
