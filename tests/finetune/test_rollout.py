import jax
import numpy as np
import pytest
from flax import nnx

from research import pretrained
from research.finetune import rollout
from research.finetune import sft
from research.nn import lora
from research.nn import losses


def test_a_round_holds_adjacent_answers_masked_and_scored_by_policy_and_reference(
    finetune_config):
  """The tiny llama with random (non-zero) LoRA parameters, so the policy and the reference
  (adapters off) differ, and a round of 2 prompts x 2 answers (one compile, both checks)."""
  config = finetune_config(gradient_accumulation_steps=1, ppo_buffer_size=2, ppo_epochs=2,
                           max_new_tokens=4, temperature=1.0, top_k=0, top_p=1.0,
                           max_samples=4)
  lm, _, examples, _ = sft.prepare(config)
  graphdef, adapters, rest = nnx.split(lm.model, lora.LoRAParam, ...)
  leaves, tree = jax.tree.flatten(adapters)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  adapters = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape)
                                       for k, x in zip(keys, leaves)])
  lm.model = nnx.merge(graphdef, adapters, rest)
  prompts = rollout.encode_prompts(lm.tokenizer, examples, config, "test")
  source = rollout.RolloutSource(prompts, config, lm.tokenizer, repeats=2)
  source.collect(0, lambda: lm.model)
  _check_round(config, lm, source)
  _check_steps(lm, source)


def _check_round(config, lm, source):
  a = source.arrays
  assert source.rows_per_round == 4 and source.steps_per_round == 4
  eos = lm.tokenizer.eos_id
  for i in range(4):
    p, n = int(a["prompt_lengths"][i]), int(a["answer_lengths"][i])
    answer = a["tokens"][i, p:p + n]
    assert 1 <= n <= config.max_new_tokens
    assert eos not in answer[:-1] and (n == config.max_new_tokens or answer[-1] == eos)
    expected = np.zeros(a["mask"].shape[1])
    expected[p - 1:p - 1 + n] = 1.0  # target t is token t + 1: the answer's tokens
    np.testing.assert_array_equal(a["mask"][i], expected)
    np.testing.assert_array_equal(a["targets"][i][a["mask"][i] == 1], answer)
    assert a["lengths"][i] == p + n and np.all(a["tokens"][i, p + n:] == source.sampling.pad_id)
  for i in (0, 2):  # the two answers of one prompt are adjacent rows
    p = int(a["prompt_lengths"][i])
    assert a["prompt_lengths"][i + 1] == p
    np.testing.assert_array_equal(a["tokens"][i, :p], a["tokens"][i + 1, :p])
  logits, _ = lm.model(a["inputs"])
  direct = np.asarray(losses.token_logps(logits, a["targets"])) * a["mask"]
  np.testing.assert_allclose(a["old_logps"], direct, rtol=1e-5, atol=1e-5)
  base = pretrained.load_model(config.model).model  # no adapters at all
  ref_logits, _ = base(a["inputs"])
  ref = np.asarray(losses.token_logps(ref_logits, a["targets"])) * a["mask"]
  np.testing.assert_allclose(a["ref_logps"], ref, rtol=1e-5, atol=1e-5)
  assert np.max(np.abs(ref - direct)) > 1e-2  # the adapters do change the model
  assert len(source.round_metrics) == 2 and source.round_metrics["rollout_tokens_per_s"] > 0


def _check_steps(lm, source):
  """Each pass serves every row once; a new rollout only at a new round."""
  rows = [source.step_batch(s)["tokens"].reshape(-1, source.length + 1) for s in range(4)]
  for e in (0, 1):  # ppo_epochs passes of ppo_buffer_size steps over the 4 rows
    served = np.concatenate(rows[2 * e:2 * e + 2])
    assert sorted(map(tuple, served)) == sorted(map(tuple, source.arrays["tokens"]))
  assert source.step_batch(0)["mask"].shape == (1, 2, source.length)
  first = source.arrays
  source.collect(3, lambda: pytest.fail("rolled out within a round"))
  assert source.arrays is first
  source.collect(4, lambda: lm.model)
  assert source.round == 1
