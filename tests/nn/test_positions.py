import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.nn import positions


def test_sinusoidal_matches_the_transformer_paper_formula():
  pos = jnp.arange(50)[None]
  pe = np.asarray(positions.sinusoidal(pos, 16))[0]
  for p in (0, 7, 49):
    for i in range(8):
      np.testing.assert_allclose(pe[p, 2 * i], np.sin(p / 10000 ** (2 * i / 16)), atol=1e-5)
      np.testing.assert_allclose(pe[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 16)), atol=1e-5)


def test_learned_positions_look_up_rows():
  table = positions.LearnedPositions(10, 4, rngs=nnx.Rngs(0))
  pos = jnp.asarray([[3, 0, 9]])
  np.testing.assert_array_equal(table(pos)[0], table.embedding[...][jnp.asarray([3, 0, 9])])


def _rope_reference(x_LxK, base):
  """Pairs (i, i + K/2) rotated by angle p * base^(-2i/K), written with complex numbers."""
  length, k = x_LxK.shape
  half = k // 2
  z = x_LxK[:, :half] + 1j * x_LxK[:, half:]
  theta = np.arange(length)[:, None] * base ** (-np.arange(half) * 2.0 / k)
  z = z * np.exp(1j * theta)
  return np.concatenate([z.real, z.imag], axis=-1)


def test_rope_matches_the_rotate_half_rotation():
  x = np.asarray(jax.random.normal(jax.random.key(0), (1, 12, 1, 8)))
  cos, sin = positions.rope_angles(jnp.arange(12)[None], 8, 100.0)
  ours = np.asarray(positions.apply_rope(jnp.asarray(x), cos, sin))[0, :, 0]
  np.testing.assert_allclose(ours, _rope_reference(x[0, :, 0], 100.0), rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_the_distance():
  q = jax.random.normal(jax.random.key(1), (1, 1, 1, 16))
  k = jax.random.normal(jax.random.key(2), (1, 1, 1, 16))
  def score(pq, pk):
    cq, sq = positions.rope_angles(jnp.asarray([[pq]]), 16, 1e4)
    ck, sk = positions.rope_angles(jnp.asarray([[pk]]), 16, 1e4)
    return float(jnp.sum(positions.apply_rope(q, cq, sq) * positions.apply_rope(k, ck, sk)))
  np.testing.assert_allclose(score(5, 2), score(105, 102), rtol=1e-4)
  np.testing.assert_allclose(score(0, 0), float(jnp.sum(q * k)), rtol=1e-5)


def test_alibi_slopes_and_bias():
  np.testing.assert_allclose(positions.alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)],
                             rtol=1e-6)
  six = positions.alibi_slopes(6)  # 4 from the power of two, then 2 interleaved from 8
  np.testing.assert_allclose(six, [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3],
                             rtol=1e-6)
  pos = jnp.arange(4)[None]
  bias = positions.alibi_bias(positions.alibi_slopes(2), pos, pos)
  assert bias.shape == (1, 2, 4, 4)
  np.testing.assert_allclose(bias[0, 0, 3], [-0.0625 * 3, -0.0625 * 2, -0.0625, 0.0])
