"""Ledger rows of the fast forms: each form of research/nn/fused.py against its notebook twin,
forward and gradient, on a tiny Transformer with uneven sizes (tests/nn/test_fused.py).

A new fast form is one more function here: a loss through the fused form, handed to `parts`,
which compares its value and gradient with the notebook loss's."""

import jax
import jax.numpy as jnp
from flax import nnx

from experiments import ledger
from research.nn import activations
from research.nn import attention
from research.nn import config as config_lib
from research.nn import fused
from research.nn import losses
from research.nn import norms
from research.nn import transformer

TEST = "tests/nn/test_fused.py::"


def _tiny_setup(ctx):
  """A tiny Transformer (uneven sizes: 21 rows, vocabulary 50), its inputs, and the notebook
  loss with its gradient, computed once for every row of this module."""
  def make():
    config = config_lib.ModelConfig(vocab_size=50, num_layers=2, width=16, num_heads=4,
                                    max_length=12, kernels="notebook")
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


# The forms one by one, on the uneven sizes of tests/nn/test_fused.py, value and vjp with one
# random cotangent; its tolerance: the forms differ only in the order of float32 operations.
B, L, H, K, D, F = 3, 7, 3, 5, 15, 37
FORM_TOL = ledger.Tolerance(rtol=1e-5, atol=1e-5)


def _normal(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def vjp_parts(fast, twin, args, seed=99):
  """{"value", "vjp"} of fast(*args) against twin(*args)."""
  ours, ours_vjp = jax.vjp(fast, *args)
  want, want_vjp = jax.vjp(twin, *args)
  g = _normal(seed, want.shape)
  return {"value": (ours, want), "vjp": (ours_vjp(g), want_vjp(g))}


@ledger.row("fused-layer-norm", "research.nn.fused.layer_norm (custom gradient)",
            "research.nn.norms.layer_norm, (x - mean) / std * g + b", FORM_TOL,
            test=TEST + "test_fused_layer_norm_equals_the_formula")
def fused_layer_norm(ctx):
  del ctx
  args = (2.0 + _normal(4, (B, L, D), 3.0), _normal(5, (D,)), _normal(6, (D,)))
  return vjp_parts(lambda *a: fused.layer_norm(*a, 1e-5), lambda *a: norms.layer_norm(*a, 1e-5),
                   args)


@ledger.row("fused-gelu", "research.nn.fused.gelu_saved_slope", "activations.gelu (erf form)",
            FORM_TOL, test=TEST + "test_gelu_saved_slope_equals_exact_gelu")
def fused_gelu(ctx):
  del ctx
  return vjp_parts(fused.gelu_saved_slope, lambda x: activations.gelu(x, approximate=False),
                   (_normal(3, (B, L, F), 4.0),))


@ledger.row("tokens-first", "research.nn.fused.tokens_first (a Linear on (B*L) x D)",
            "the Linear on B x L x D", FORM_TOL,
            test=TEST + "test_tokens_first_equals_the_linear_on_b_x_l_x_d")
def tokens_first(ctx):
  del ctx
  graphdef, params = nnx.split(nnx.Linear(D, F, rngs=nnx.Rngs(0)))
  apply = lambda form: lambda params, x: form(nnx.merge(graphdef, params), x)
  return vjp_parts(apply(fused.tokens_first), apply(lambda layer, x: layer(x)),
                   (params, _normal(1, (B, L, D))))


@ledger.row("fused-attention", "research.nn.fused.grouped_attention (custom gradient)",
            "attention.scaled_dot_product_attention on repeated heads", FORM_TOL,
            test=TEST + "test_grouped_attention_equals_scaled_dot_product_attention")
def fused_attention(ctx):
  del ctx
  q = _normal(20, (B, L, H, K), 2.0)  # peaked weights: a wrong softmax shows
  k, v = _normal(21, (B, L, 1, K), 2.0), _normal(22, (B, L, 1, K))
  positions = jnp.broadcast_to(jnp.arange(L), (B, L))
  mask = attention.causal_mask(positions, positions)
  heads = lambda t: t.transpose(0, 2, 1, 3)  # B x L x H x K <-> B x H x L x K

  def twin(q, k, v):
    return heads(attention.scaled_dot_product_attention(
        heads(q), attention.repeat_kv(heads(k), H), attention.repeat_kv(heads(v), H), mask))

  return vjp_parts(lambda q, k, v: fused.grouped_attention(q, k, v, mask), twin, (q, k, v))


STYLES = {"gpt2": dict(position="learned", ffn="gelu"),
          "llama": dict(position="rope", norm="rmsnorm", ffn="swiglu", num_kv_heads=1,
                        qkv_bias=False, out_bias=False, ffn_bias=False, norm_bias=False,
                        tied_head=False)}


def whole_model(style):
  """{"logits", "loss", "grad"}: the same parameters under kernels="notebook" and "fused"."""
  fields = dict(vocab_size=23, num_layers=2, width=D, num_heads=H, head_width=K + 1,
                ffn_width=F, max_length=L, init_std=0.3, **STYLES[style])
  if fields["position"] != "rope":
    fields["head_width"] = K
  tokens = jax.random.randint(jax.random.key(8), (B, L), 0, 23)
  targets = jax.random.randint(jax.random.key(9), (B, L), 0, 23)

  def run(kernels):
    graphdef, params = nnx.split(transformer.Transformer(
        config_lib.ModelConfig(kernels=kernels, **fields), rngs=nnx.Rngs(0)))

    def loss(params):
      logits, _ = nnx.merge(graphdef, params)(tokens)
      return losses.cross_entropy(logits, targets), logits
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

  (ours, ours_logits), ours_grad = run("fused")
  (want, want_logits), want_grad = run("notebook")
  return {"logits": (ours_logits, want_logits), "loss": (ours, want),
          "grad": (ours_grad, want_grad)}


for _style in STYLES:
  ledger.row(f"transformer-{_style}", f'Transformer(kernels="fused"), {_style} style',
             'Transformer(kernels="notebook"), the same parameters', FORM_TOL,
             test=TEST + f"test_whole_transformer_notebook_and_fused_agree[{_style}]")(
                 lambda ctx, style=_style: whole_model(style))
