"""The LLM chapter: from text to a trained GPT and its samplers, with the notebook's claims
about attention scaling, dropout, residuals, LayerNorm and sampling measured, and the fused
forms shown equal to the notebook's."""

import math
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from flax import nnx

from experiments.configs import train_lm as train_lm_config
from research import files
from research import tour
from research.generate import decode
from research.generate import samplers
from research.nn import attention
from research.nn import config as config_lib
from research.nn import count
from research.nn import dropout as dropout_lib
from research.nn import losses
from research.nn import norms
from research.nn import transformer
from research.train import flops
from research.train import lm


def attention_entropy(key, widths, num_keys=128, num_queries=64):
  """Mean entropy (nats) of one query's attention over `num_keys` keys, q and k ~ N(0, 1),
  with scores scaled by 1/sqrt(d_k) and unscaled."""
  scaled, unscaled = [], []
  for d_k in widths:
    kq, kk = jax.random.split(jax.random.fold_in(key, d_k))
    q = jax.random.normal(kq, (1, 1, num_queries, d_k))  # B x H x L x K
    k = jax.random.normal(kk, (1, 1, num_keys, d_k))
    mask = jnp.ones((1, num_queries, num_keys), bool)  # every key visible: isolate the scale
    for scale, out in ((None, scaled), (1.0, unscaled)):
      att = attention.attention_weights(q, k, mask, scale=scale)
      entropy = -jnp.sum(jnp.where(att > 0, att * jnp.log(att), 0.0), axis=-1)
      out.append(float(jnp.mean(entropy)))
  return scaled, unscaled


def residual_gradients(key, depth=32, width=64, batch=16):
  """||dL/dW_1|| / ||dL/dW_depth|| for a sigmoid MLP stack, with and without residuals."""
  weights = [jax.random.normal(k, (width, width)) / math.sqrt(width)
             for k in jax.random.split(key, depth)]
  x = jax.random.normal(jax.random.fold_in(key, depth), (batch, width))

  def loss(weights, residual):
    h = x
    for w in weights:
      y = jax.nn.sigmoid(h @ w)
      h = h + y if residual else y  # h <- h + f(h) keeps an identity path for the gradient
    return jnp.mean(h)

  norms_by_kind = {}
  for residual in (False, True):
    grads = jax.grad(loss)(weights, residual)
    norms_by_kind[residual] = [float(jnp.linalg.norm(g)) for g in grads]
  return norms_by_kind


def kernel_forms(model_config, batch, length, key, steps=5):
  """The same model (same parameters, dropout off) under kernels="notebook" and "fused":
  max |loss difference|, max |gradient difference| over every parameter, and the median
  seconds of a jitted forward + backward step of each (after one compiling call)."""
  model_config = model_config.replace(dropout=0.0)
  tokens = jax.random.randint(key, (batch, length), 0, model_config.vocab_size)
  targets = jax.random.randint(jax.random.fold_in(key, 1), (batch, length), 0,
                               model_config.vocab_size)
  results = {}
  for kernels in ("notebook", "fused"):
    graphdef, params = nnx.split(transformer.Transformer(
        model_config.replace(kernels=kernels), rngs=nnx.Rngs(0)))

    def loss(params, graphdef=graphdef):
      logits, _ = nnx.merge(graphdef, params)(tokens)
      return losses.cross_entropy(logits, targets)

    step = jax.jit(jax.value_and_grad(loss))
    value, grads = jax.block_until_ready(step(params))
    times = []
    for _ in range(steps):
      tick = time.perf_counter()
      jax.block_until_ready(step(params))
      times.append(time.perf_counter() - tick)
    results[kernels] = (value, grads, float(np.median(times)))
  (loss_a, grads_a, time_a), (loss_b, grads_b, time_b) = results["notebook"], results["fused"]
  grad_diff = max(float(jnp.max(jnp.abs(a - b)))
                  for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)))
  return float(jnp.abs(loss_a - loss_b)), grad_diff, time_a, time_b


def next_token_logits(model, tokenizer, prompt):
  ids = jnp.asarray([tokenizer.encode(prompt)], jnp.int32)
  logits, _ = model(ids)
  return np.asarray(logits[0, -1])


def run_experiment(config, out_dir, log=print) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  key = jax.random.key(config.seed)
  claims = []

  # 1. Scaling by 1/sqrt(d_k) keeps the attention spread as d_k grows.
  widths = [4, 16, 64, 256, 1024]
  scaled, unscaled = attention_entropy(key, widths)
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.semilogx(widths, scaled, "o-", label="q k / sqrt(d_k)")
  ax.semilogx(widths, unscaled, "s-", label="q k (unscaled)")
  ax.axhline(math.log(128), color="gray", ls=":", label="uniform over 128 keys")
  ax.set_xlabel("d_k")
  ax.set_ylabel("attention entropy (nats)")
  ax.legend()
  files.save_figure(fig, out_dir / "attention_entropy.png")
  claims.append(tour.Claim.at_least(
      "scaling scores by 1/sqrt(d_k) keeps attention from collapsing onto one key as d_k grows "
      "(entropy at d_k=1024, scaled minus unscaled, nats)", "gap",
      scaled[-1] - unscaled[-1], 2.0, figure="attention_entropy.png"))

  # 2. Inverted dropout keeps the expected activation.
  x = jnp.abs(jax.random.normal(key, (400_000,))) + 0.5
  rates = [0.1, 0.3, 0.5, 0.7, 0.9]
  ratios = [float(jnp.mean(dropout_lib.dropout(x, p, jax.random.fold_in(key, i))) / jnp.mean(x))
            for i, p in enumerate(rates)]
  plain = [1 - p for p in rates]  # without the 1/(1-p) scaling
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.plot(rates, ratios, "o-", label="inverted dropout")
  ax.plot(rates, plain, "s--", label="dropout without 1/(1-p)")
  ax.set_xlabel("dropout rate p")
  ax.set_ylabel("E[dropout(x)] / E[x]")
  ax.legend()
  files.save_figure(fig, out_dir / "dropout_mean.png")
  claims.append(tour.Claim.at_most(
      "dropout's 1/(1-p) scaling keeps the expected activation (p = 0.1 .. 0.9)",
      "max |E[y]/E[x] - 1|", max(abs(r - 1) for r in ratios), 0.02, figure="dropout_mean.png"))

  # 3. Residuals keep the first layer's gradient alive in a 32-layer stack.
  grads = residual_gradients(key)
  fig, ax = plt.subplots(figsize=(5, 3.2))
  layers = np.arange(1, 33)
  ax.semilogy(layers, np.maximum(grads[True], 1e-30), "o-", ms=3, label="x + f(x)")
  ax.semilogy(layers, np.maximum(grads[False], 1e-30), "s-", ms=3, label="f(x)")
  ax.set_xlabel("layer")
  ax.set_ylabel("||dL/dW_layer||")
  ax.legend()
  files.save_figure(fig, out_dir / "residual_gradients.png")
  with_res = grads[True][0] / grads[True][-1]
  without = grads[False][0] / grads[False][-1]
  claims.append(tour.Claim.at_least(
      "residuals keep the first layer's gradient alive in a 32-layer sigmoid stack "
      "(||g_1|| / ||g_32||, with residuals)", "ratio", with_res, 1e-2,
      figure="residual_gradients.png"))
  claims.append(tour.Claim.at_most(
      "without residuals the first layer's gradient vanishes (||g_1|| / ||g_32||)", "ratio",
      without, 1e-6, figure="residual_gradients.png"))

  # 4. The parameter chart: closed form equals the real leaf count.
  gpt2 = config_lib.gpt2_small()
  table = count.parameter_table(gpt2)
  leaves = sum(x.size for x in jax.tree.leaves(
      nnx.state(transformer.abstract_model(gpt2), nnx.Param)))
  fig, ax = plt.subplots(figsize=(5.5, 3.2))
  ax.barh(list(table), [v / 1e6 for v in table.values()])
  ax.set_xlabel("parameters (millions), GPT-2 small, tied head")
  files.save_figure(fig, out_dir / "parameter_count.png")
  claims.append(tour.Claim.close_to(
      "GPT-2 small has 124,439,808 parameters with a tied head (closed form = leaf count)",
      "leaves", leaves, 124_439_808, 0, fmt="{:,.0f}", figure="parameter_count.png"))

  # 5. Train a small BPE GPT on the default corpus.
  train_dir = out_dir / "train"
  shutil.rmtree(train_dir, ignore_errors=True)  # a chapter always trains from scratch
  run = lm.train_lm(config, train_dir, show_progress=False)
  result = run.result
  log(f"trained {count.parameter_count(run.model_config):,} parameters for {config.steps} "
      f"steps: eval loss {run.eval_loss:.3f}, {result.ms_per_iter:.1f} ms/step, "
      f"{result.tokens_per_s:.0f} tokens/s, "
      f"{flops.Peak(result.peak_flops, result.peak_machine).describe(result.mfu)}")
  unigram = lm.unigram_cross_entropy(run.train_windows.tokens, run.val_windows.tokens,
                                     run.tokenizer.vocab_size)
  log(f"validation loss {run.eval_loss:.3f} nats/token; unigram frequencies {unigram:.3f}; "
      f"uniform log V {math.log(run.tokenizer.vocab_size):.3f}")
  claims.append(tour.Claim.at_most(
      "a small BPE GPT learns from context: its validation loss beats the unigram model "
      "(token frequencies) by at least 0.1 nats/token (val - unigram)", "difference",
      run.eval_loss - unigram, -0.1, fmt="{:.3f}", figure="train/training_loss.png"))

  # 6. LayerNorm rows have mean 0 and variance 1 (the trained model's residual stream).
  model = result.model
  ids = jnp.asarray([run.tokenizer.encode("Return a new list of the items in the order.")])
  positions = jnp.arange(ids.shape[1])[None]
  hidden = model.embed_tokens(ids, positions)
  for block in model.blocks:
    hidden, _ = block(hidden, positions)
  normed = norms.LayerNorm(hidden.shape[-1])(hidden[0])
  worst = max(float(jnp.max(jnp.abs(jnp.mean(normed, -1)))),
              float(jnp.max(jnp.abs(jnp.var(normed, -1) - 1))))
  claims.append(tour.Claim.at_most(
      "LayerNorm output has mean 0 and variance 1 per row (variance var/(var + eps): the "
      "trained model's last residual stream)",
      "max |mean| or |var - 1|", worst, 1e-3, fmt="{:.2g}"))

  # 7. Temperature > 1 flattens the next-token distribution on a real prompt.
  logits = next_token_logits(model, run.tokenizer, config.prompt)
  temperatures = [0.25, 0.5, 1.0, 1.5, 2.0, 4.0]
  entropies = []
  for t in temperatures:
    p = np.asarray(jax.nn.softmax(samplers.apply_temperature(jnp.asarray(logits), t)))
    entropies.append(float(-np.sum(p * np.log(np.maximum(p, 1e-30)))))
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.plot(temperatures, entropies, "o-")
  ax.set_xlabel("temperature T")
  ax.set_ylabel(f"entropy of p(next | {config.prompt!r})")
  files.save_figure(fig, out_dir / "temperature.png")
  claims.append(tour.Claim.at_least(
      "temperature > 1 flattens the distribution: entropy rises with T (min step, nats)",
      "min dH", float(np.min(np.diff(entropies))), 1e-6, fmt="{:.3g}",
      figure="temperature.png"))

  # 8. Each sampler's candidate set on the same prompt.
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits)))
  order = np.argsort(-probs)
  sets = {name: samplers.candidate_set(logits, **kwargs)
          for name, kwargs in samplers.NAMED.items() if name != "temperature 0.8"}
  top_p = sets["top-p 0.9"]
  top_p_ok = probs[top_p].sum() >= 0.9 and probs[top_p[:-1]].sum() < 0.9
  min_p_ok = bool(np.all(probs[sets["min-p 0.1"]] >= 0.1 * probs.max()) and np.all(
      np.delete(probs, sets["min-p 0.1"]) < 0.1 * probs.max()))
  exact = (len(sets["greedy"]) == 1 and sets["greedy"][0] == order[0]
           and set(sets["top-k 20"]) == set(order[:20]) and top_p_ok and min_p_ok)
  fig, ax = plt.subplots(figsize=(6.5, 3.4))
  shown = order[:30]
  ax.bar(range(len(shown)), probs[shown], color="lightgray")
  for row, (name, ids_set) in enumerate(sets.items()):
    ranks = [i for i, token in enumerate(shown) if token in set(ids_set)]
    ax.plot(ranks, [probs[shown[0]] * (1.05 + 0.07 * row)] * len(ranks), "|", ms=8,
            label=f"{name} ({len(ids_set)} tokens)")
  ax.set_xticks(range(len(shown)))
  ax.set_xticklabels([repr(run.tokenizer.decode([int(t)]))[1:-1] for t in shown], rotation=90,
                     fontsize=7)
  ax.set_ylabel(f"p(next | {config.prompt!r})")
  ax.legend(fontsize=7)
  files.save_figure(fig, out_dir / "candidate_sets.png")
  sizes = ", ".join(f"{name} {len(s)}" for name, s in sets.items())
  claims.append(tour.Claim(
      "each sampler keeps its candidate set on a real prompt: greedy the argmax, top-k the k "
      "likeliest, top-p the smallest set with mass >= p, min-p those with p >= min_p p_max",
      f"set sizes: {sizes}", bool(exact), "candidate_sets.png"))

  # 9. The fused forms (research/nn/fused.py) compute what the notebook forms compute.
  loss_diff, grad_diff, notebook_s, fused_s = kernel_forms(
      run.model_config, config.batch_size, config.context_length, key)
  log(f"kernels: notebook {1000 * notebook_s:.1f} ms, fused {1000 * fused_s:.1f} ms per "
      f"forward + backward step ({notebook_s / fused_s:.2f}x)")
  claims.append(tour.Claim(
      "the fused forms (custom-gradient attention, LayerNorm and GELU, tokens-first linears) "
      "give the notebook forms' loss and gradients (max |difference| <= 1e-5, float32) in a "
      "faster step (the speed-up is measured, not judged: BENCHMARKS.md times it)",
      f"max |loss diff| {loss_diff:.2g}, max |grad diff| {grad_diff:.2g}; step "
      f"{1000 * notebook_s:.1f} ms notebook, {1000 * fused_s:.1f} ms fused "
      f"({notebook_s / fused_s:.2f}x)", bool(loss_diff <= 1e-5 and grad_diff <= 1e-5)))

  samples = decode.sample_each(run.result.model, run.tokenizer, config.prompt,
                               config.max_new_tokens, key)
  lines = [f"--- {name} ---\n{text}\n" for name, text in samples.items()]
  files.write_text(out_dir / "samples.txt", "\n".join(lines))
  for name, text in samples.items():
    log(f"[{name}] {text!r}")
  return claims


chapter = tour.experiment_chapter(
    "llm", "LLMs: a GPT from scratch", 5,
    train_lm_config.get_config, run_experiment, pass_log=True)
