"""Ledger rows of the fast forms: each form of research/nn/fused.py against its notebook twin,
forward and gradient, on a tiny Transformer with uneven sizes (tests/nn/test_fused.py).

A new fast form is one more function here: a loss through the fused form, handed to `parts`,
which compares its value and gradient with the notebook loss's."""

import jax
import jax.numpy as jnp
from flax import nnx

from experiments import ledger
from research.nn import config as config_lib
from research.nn import fused
from research.nn import losses
from research.nn import transformer

TEST = "tests/nn/test_fused.py::"


def _tiny_setup(ctx):
  """A tiny Transformer (uneven sizes: 21 rows, vocabulary 50), its inputs, and the notebook
  loss with its gradient, computed once for every row of this module."""
  def make():
    config = config_lib.ModelConfig(vocab_size=50, num_layers=2, width=16, num_heads=4,
                                    max_length=12)
    graphdef, params = nnx.split(transformer.Transformer(config, rngs=nnx.Rngs(0)))
    tokens = jax.random.randint(jax.random.key(2), (3, 7), 0, 50)
    targets = jax.random.randint(jax.random.key(3), (3, 7), 0, 50)
    weights = (jax.random.uniform(jax.random.key(4), (3, 7)) < 0.6).astype(jnp.float32)

    def twin(params):  # L = sum_t w_t -log p(x_t+1) / sum_t w_t on the whole logits
      return losses.cross_entropy(nnx.merge(graphdef, params)(tokens)[0], targets, weights)

    return graphdef, params, (tokens, targets, weights), jax.jit(jax.value_and_grad(twin))(params)
  return ctx.once("fused-tiny", make)


def parts(ctx, fused_loss):
  """{"loss", "grad"} of `fused_loss(model, tokens, targets, weights)` against the notebook's."""
  graphdef, params, inputs, (want, want_grad) = _tiny_setup(ctx)
  ours, ours_grad = jax.jit(jax.value_and_grad(
      lambda p: fused_loss(nnx.merge(graphdef, p), *inputs)))(params)
  return {"loss": (ours, want), "grad": (ours_grad, want_grad)}


def chunked_loss(model, tokens, targets, weights, chunked=fused.chunked_cross_entropy):
  # 21 rows in chunks of 4: the last chunk is padded with weight-0 rows
  return chunked(model.head_logits, model.hidden(tokens), targets, weights, chunk_rows=4)


@ledger.row("chunked-cross-entropy", "research.nn.fused.chunked_cross_entropy",
            "research.nn.losses.cross_entropy of the whole logits",
            ledger.Tolerance(rtol=1e-6, atol=1e-6),
            test=TEST + "test_chunked_cross_entropy_equals_the_whole_logits_loss_and_gradient")
def chunked_cross_entropy(ctx):
  return parts(ctx, chunked_loss)


@ledger.row("recomputed-block", "research.nn.fused.recomputed_block (hidden(remat=True))",
            "the plain blocks and losses.cross_entropy",
            {"loss": ledger.Tolerance(rtol=1e-6), "grad": ledger.Tolerance(rtol=1e-5, atol=1e-7)},
            test=TEST + "test_recomputed_blocks_give_the_same_loss_and_gradient_with_less_memory")
def recomputed_block(ctx):
  def loss(model, tokens, targets, weights):
    return losses.cross_entropy(model.head_logits(model.hidden(tokens, remat=True)), targets,
                                weights)
  return parts(ctx, loss)
