import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.generate import decode
from research.generate import samplers
from research.nn import config as config_lib
from research.nn import transformer


def _model(**changes):
  base = dict(vocab_size=23, num_layers=2, width=16, num_heads=4, max_length=24)
  base.update(changes)
  return transformer.Transformer(config_lib.ModelConfig(**base), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("changes", [
    {}, {"position": "sinusoidal", "tied_head": False}, {"position": "alibi"},
    {"position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "num_kv_heads": 2},
    {"attention": "xla", "position": "rope", "num_kv_heads": 1},
])
def test_cached_decoding_gives_the_logits_of_a_full_recompute(changes):
  model = _model(**changes)
  tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, 23)
  full, _ = jax.jit(lambda m, t: m(t))(model, tokens)
  cached = decode.cached_logits(model, tokens, prefill=5)
  np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-5)


def test_greedy_generation_equals_argmax_of_full_recompute_step_by_step():
  model = _model()
  prompt = jnp.asarray([[3, 7, 1], [5, 5, 2]])
  out, lengths = decode.generate(model, prompt, 6, jax.random.key(0), temperature=0.0)
  # No cache: every step runs the whole sequence again (one program: the buffer has its final
  # length, and causal attention keeps the zeros after position t from reaching it).
  forward = jax.jit(lambda m, t: m(t)[0])
  tokens = jnp.concatenate([prompt, jnp.zeros((2, 6), prompt.dtype)], axis=1)
  for t in range(3, 9):
    tokens = tokens.at[:, t].set(samplers.greedy(forward(model, tokens)[:, t - 1]))
  np.testing.assert_array_equal(out, tokens)
  np.testing.assert_array_equal(lengths, [6, 6])


def test_generation_stops_at_eos_and_pads_after_it():
  model = _model()
  prompt = jnp.asarray([[3, 7, 1]])
  greedy, _ = decode.generate(model, prompt, 6, jax.random.key(0), temperature=0.0)
  eos = int(greedy[0, 4])  # the second generated token
  out, lengths = decode.generate(model, prompt, 6, jax.random.key(0), temperature=0.0,
                                 eos_id=eos, pad_id=0)
  first = int(np.argmax(np.asarray(greedy[0, 3:]) == eos))
  assert int(lengths[0]) == first + 1
  np.testing.assert_array_equal(out[0, : 3 + first + 1], greedy[0, : 3 + first + 1])
  assert np.all(np.asarray(out[0, 3 + first + 1:]) == 0)


def test_sampling_is_seeded():
  model = _model()
  prompt = jnp.asarray([[1, 2]])
  a, _ = decode.generate(model, prompt, 8, jax.random.key(4), temperature=1.0, top_k=5)
  b, _ = decode.generate(model, prompt, 8, jax.random.key(4), temperature=1.0, top_k=5)
  c, _ = decode.generate(model, prompt, 8, jax.random.key(5), temperature=1.0, top_k=5)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_prompt_past_the_position_table_is_refused():
  with pytest.raises(ValueError, match="max_length"):
    decode.generate(_model(), jnp.zeros((1, 20), jnp.int32), 10, jax.random.key(0))


def test_sample_each_continues_the_prompt_once_per_sampler_within_max_length():
  from research.text import char  # pylint: disable=g-import-not-at-top
  tokenizer = char.CharTokenizer.from_text("abcdefghijklmnopqrstuvw")  # 23 characters
  model = _model()
  texts = decode.sample_each(model, tokenizer, "abcd", 100, jax.random.key(0))
  assert list(texts) == list(samplers.NAMED)
  greedy, _ = decode.generate(model, jnp.asarray([tokenizer.encode("abcd")]), 20,
                              jax.random.key(0), temperature=0.0)
  assert texts["greedy"] == tokenizer.decode(np.asarray(greedy[0]).tolist())  # 4 + 20 = 24
  for text in texts.values():
    assert text.startswith("abcd") and len(text) == 24


# the notebook kernels with learned positions, the fused ones on a llama (RoPE, grouped KV)
@pytest.mark.parametrize("changes", [
    {"kernels": "notebook", "position": "learned"},
    {"kernels": "fused", "position": "rope", "norm": "rmsnorm", "ffn": "swiglu",
     "num_kv_heads": 2},
])
def test_a_left_padded_batch_generates_what_each_row_generates_alone(changes):
  """Would fail if the padding were attended, if a padded row's positions started at the
  padding instead of its first real token, or if rows wrote different cache slots."""
  model = _model(init_std=0.3, **changes)  # logits far enough apart that greedy is stable
  prompts = [[3, 7, 1, 9, 4], [5, 2]]
  p = max(map(len, prompts))
  padded = jnp.asarray([[0] * (p - len(r)) + r for r in prompts])
  out, lengths = decode.generate(model, padded, 6, jax.random.key(0), temperature=0.0,
                                 prompt_lengths=[len(r) for r in prompts])
  for i, row in enumerate(prompts):
    alone, alone_lengths = decode.generate(model, jnp.asarray([row]), 6, jax.random.key(0),
                                           temperature=0.0)
    np.testing.assert_array_equal(out[i, p:], alone[0, len(row):])
    assert int(lengths[i]) == int(alone_lengths[0])
  np.testing.assert_array_equal(out[:, :p], padded)


def test_left_padded_cached_logits_equal_the_unpadded_full_forward():
  model = _model(kernels="fused", position="learned")
  tokens = jax.random.randint(jax.random.key(1), (2, 10), 1, 23)
  pad = np.array([0, 3])
  padded = jnp.stack([tokens[0], jnp.concatenate([jnp.zeros(3, jnp.int32), tokens[1, :7]])])
  cached = decode.cached_logits(model, padded, prefill=5, offset_B=pad)
  full, _ = model(tokens)
  np.testing.assert_allclose(cached[0], full[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(cached[1, 3:], full[1, :7], rtol=1e-5, atol=1e-5)
  assert np.all(np.isfinite(np.asarray(cached)))  # the padding's own rows too


def test_prompt_lengths_outside_the_prompt_are_refused():
  with pytest.raises(ValueError, match="prompt_lengths"):
    decode.generate(_model(), jnp.zeros((2, 4), jnp.int32), 2, jax.random.key(0),
                    prompt_lengths=[4, 5])
