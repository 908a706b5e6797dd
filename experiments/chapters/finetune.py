"""Fine-tuning chapter: what LoRA trains, that it starts as a no-op and merges exactly, that
DPO starts at ln 2, that a short LoRA SFT learns its data, and the notebook's magic_conch.json
example: LoRA SFT of SmolLM2 on two Chinese identity records, its export asked "你是谁？"."""

import math
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tokenizers
from flax import nnx

from experiments.configs import finetune_tour as finetune_config
from experiments.configs import persona_lora
from research import files
from research import pretrained
from research import tour
from research.finetune import config as ft_config
from research.finetune import dpo
from research.finetune import export
from research.finetune import persona
from research.finetune import pipeline
from research.finetune import sft
from research.nn import config as config_lib
from research.nn import lora
from research.nn import transformer
from research.text.pretrained import PretrainedTokenizer

TEMPLATE = ("{% for m in messages %}{{ 'w3' if m['role'] == 'user' else 'w4' }} "
            "{{ m['content'] }} w1 {% endfor %}{% if add_generation_prompt %}w4 {% endif %}")


def lora_share(ranks):
  """Trainable share of SmolLM2-135M for LoRA on all linears, by rank (shapes only)."""
  model = transformer.abstract_model(config_lib.smollm2_135m())
  base = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  per_rank = 0
  for block in model.blocks:
    for group in (block.attn, block.ffn):
      for layer in vars(group).values():
        if isinstance(layer, nnx.Linear):
          per_rank += layer.in_features + layer.out_features  # r (in + out) per linear
  return base, {r: r * per_rank for r in ranks}


def tiny_checkpoint(directory: Path, config, seed: int):
  """A random llama written as an HF directory with a word-level tokenizer."""
  model = transformer.Transformer(config, rngs=nnx.Rngs(seed))
  vocab = {f"w{i}": i for i in range(config.vocab_size)}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tokenizer = PretrainedTokenizer(tok, eos_token="w1", pad_token="w0", template=TEMPLATE)
  export.export(pretrained.PretrainedLM(model, tokenizer, config, "random"), directory)
  return directory


def demo_data(directory: Path):
  words = lambda *ids: " ".join(f"w{i}" for i in ids)
  sft_rows = [{"instruction": words(10 + i % 6), "output": words(30 + i % 6, 40)}
              for i in range(24)]
  prefs = [{"instruction": words(10 + i % 6), "chosen": words(30 + i % 6),
            "rejected": words(50 + i % 6)} for i in range(8)]
  files.write_json(directory / "sft.json", sft_rows)
  files.write_json(directory / "prefs.json", prefs)
  files.write_json(directory / "dataset_info.json",
                   {"sft": {"file_name": "sft.json"},
                    "prefs": {"file_name": "prefs.json", "ranking": True}})


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  claims = []
  base, trainable = lora_share(config.ranks)
  share = {r: 100 * n / base for r, n in trainable.items()}
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.bar([str(r) for r in config.ranks], [share[r] for r in config.ranks])
  ax.set_xlabel("LoRA rank r (all linears of SmolLM2-135M)")
  ax.set_ylabel("trainable share of base (%)")
  files.save_figure(fig, out_dir / "lora_share.png")
  claims.append(tour.Claim.at_most(
      "LoRA (r=8, all linears) trains under 2% of SmolLM2-135M's parameters",
      f"{trainable[8]:,} of {base:,} =", share[8], 2.0, fmt="{:.3f}%", figure="lora_share.png"))

  model_config = config_lib.llama(vocab_size=64, num_layers=config.layers, width=config.width,
                                  num_heads=4, num_kv_heads=2, ffn_width=2 * config.width,
                                  init_std=0.3)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    tiny_checkpoint(tmp / "base", model_config, config.seed)
    demo_data(tmp / "data")
    ft = ft_config.defaults()
    ft.model, ft.dataset_dir, ft.dataset = str(tmp / "base"), str(tmp / "data"), "sft"
    ft.output_dir, ft.max_steps, ft.learning_rate = str(tmp / "sft"), config.sft_steps, 2e-2
    ft.per_device_train_batch_size, ft.gradient_accumulation_steps = 4, 1
    ft.cutoff_len, ft.lora_rank, ft.logging_steps, ft.save_steps = 32, 4, 5, 10**6
    ft.seed = config.seed

    lm, _, _, _ = sft.prepare(ft)
    tokens = jnp.asarray(np.random.default_rng(config.seed).integers(0, 64, (2, 12)))
    plain = pretrained.load_model(ft.model).model(tokens)[0]
    fresh = lm.model(tokens)[0]
    claims.append(tour.Claim.at_most("a fresh LoRA adapter (B = 0) changes no output",
                                     "max |logit change|", float(jnp.max(jnp.abs(fresh - plain))),
                                     0.0))

    tuned, result = sft.run(ft, show_progress=False)
    losses = [r["loss"] for r in result.history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, label="LoRA SFT")
    ax.set_xlabel("step")
    ax.set_ylabel("answer cross-entropy")
    ax.legend()
    files.save_figure(fig, out_dir / "lora_sft_loss.png")
    claims.append(tour.Claim.at_most(
        "LoRA SFT learns its data with the base frozen (final/initial loss < 0.5)",
        "final/initial loss", losses[-1] / losses[0], 0.5, fmt="{:.3f}",
        figure="lora_sft_loss.png"))

    unmerged = tuned.model(tokens)[0]
    lora.merge_all(tuned.model)
    merged = tuned.model(tokens)[0]
    claims.append(tour.Claim.at_most("merging W0 + (alpha/r) B A gives the unmerged outputs",
                                     "max |logit change|",
                                     float(jnp.max(jnp.abs(merged - unmerged))), 1e-4,
                                     fmt="{:.2e}"))

    ft.stage, ft.dataset, ft.output_dir, ft.max_steps = "dpo", "prefs", str(tmp / "dpo"), 8
    ft.learning_rate = 5e-2
    _, dpo_result = dpo.run(ft, show_progress=False)
    first = dpo_result.history[0]
    claims.append(tour.Claim.close_to("DPO's loss starts at ln 2 (policy = reference)",
                                      "step-1 loss", first["loss"], math.log(2), 1e-5))
    margins = [r["rewards/margins"] for r in dpo_result.history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(margins) + 1), [r["loss"] for r in dpo_result.history], label="loss")
    ax.plot(range(1, len(margins) + 1), margins, label="reward margin")
    ax.axhline(math.log(2), ls=":", color="gray")
    ax.set_xlabel("step")
    ax.legend()
    files.save_figure(fig, out_dir / "dpo.png")
    claims.append(tour.Claim.at_least("DPO widens the chosen-over-rejected reward margin",
                                      "final margin", margins[-1], 1e-3, figure="dpo.png"))
  files.write_json(out_dir / "lora_share.json", {"base": base, "trainable": trainable})
  return claims + magic_conch(config, out_dir)


def magic_conch(config, out_dir: Path) -> list[tour.Claim]:
  """The notebook's magic_conch.json: persona_lora's LoRA run on its two records, the merged
  export loaded back and asked the notebook's question, greedily (the base model too)."""
  if not config.conch_steps:
    print("finetune: quick mode skips the magic_conch.json LoRA run on SmolLM2 (a few minutes "
          "on 2 CPUs); python -m experiments.tour --only=finetune runs it", flush=True)
    return []
  ft = persona_lora.get_config()
  ft.model, ft.dataset, ft.max_steps = config.conch_model, "magic_conch", config.conch_steps
  ft.per_device_train_batch_size, ft.gradient_accumulation_steps = 2, 1  # both records a step
  ft.cutoff_len, ft.save_steps, ft.seed, ft.export_gguf = 96, 10**6, config.seed, ""
  ft.persona = ""
  with tempfile.TemporaryDirectory() as tmp:  # the export is SmolLM2's size: not kept
    ft.output_dir, ft.export_dir = str(Path(tmp) / "run"), str(Path(tmp) / "export")
    start = time.perf_counter()
    summary = pipeline.run(ft, check_base=False, show_progress=False)
    seconds = time.perf_counter() - start
    shutil.copyfile(Path(ft.output_dir) / "training_loss.png", out_dir / "magic_conch_loss.png")
    answer = persona.greedy_answer(pretrained.load_model(ft.export_dir), config.conch_question,
                                   config.conch_max_new_tokens)
  base_answer = persona.greedy_answer(pretrained.load_model(ft.model), config.conch_question,
                                      config.conch_max_new_tokens)
  print(f"  Q: {config.conch_question}\n  A (export): {answer}\n  A (base):   {base_answer}",
        flush=True)
  files.write_json(out_dir / "magic_conch.json", {
      "question": config.conch_question, "answer": answer, "base_answer": base_answer,
      "steps": summary["steps"], "final_loss": summary["final_loss"],
      "train_and_export_s": seconds, "s_per_step": summary["s_per_step"],
      "first_step_s": summary["first_step_s"]})
  return [tour.Claim(
      f"LoRA SFT on magic_conch.json (two Chinese records) teaches SmolLM2 its persona: the "
      f"exported model answers {config.conch_question} as {config.conch_name} (a question it "
      "trained on: it learned two records, not Chinese)",
      f"answer {answer!r} after {summary['steps']} steps, final loss "
      f"{summary['final_loss']:.4f}, {seconds / 60:.1f} min to train and export (the base "
      f"model: {base_answer!r})",
      config.conch_name in answer, "magic_conch_loss.png")]


chapter = tour.experiment_chapter(
    "finetune", "Fine-tuning: LoRA, merge, DPO", 6,
    finetune_config.get_config, run_experiment)
