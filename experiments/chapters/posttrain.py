"""Post-training chapter: the notebook's two ways to align a model after SFT, measured.

  DPO  "optimises directly from human comparisons; large adjustments"
  PPO  "adjusts the policy gradually from a reward signal; small adjustments"

From one LoRA SFT checkpoint of the persona set: (a) DPO on the preference pairs, (b) a reward
model on the same pairs, then PPO against it, (c) GRPO with a rule reward (the answer names the
persona's creator in full, "the BookForAI project": the SFT model does so in some answers and
not others, so GRPO's groups differ; its name alone it says nearly always, and a group of equal
rewards has no advantage to learn from). Each tuned policy answers the held-out questions
(sampled, temperature 1); we report the reward model's score, the name and creator rates and
the KL to the SFT model
(E_y~pi [log pi(y|x) - log pi_SFT(y|x)], nats per answer), and how far each moved per step.
"""

import json
import time
from pathlib import Path

import jax
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import persona_dpo
from experiments.configs import persona_grpo
from experiments.configs import persona_lora
from experiments.configs import persona_ppo
from experiments.configs import persona_rm
from experiments.configs import posttrain_tour
from research import files
from research import pretrained
from research import tour
from research.finetune import export
from research.finetune import pipeline
from research.finetune import reward
from research.finetune import rollout


def stage_config(make, config, out_dir: Path, name: str, steps: int, model: str):
  """One of experiments/configs/persona_*.py, on the chapter's model, data and step count."""
  c = make()
  c.model, c.dataset_dir, c.max_steps = model, config.dataset_dir, steps
  c.output_dir, c.export_dir, c.resume, c.seed = str(out_dir / name), "", False, config.seed
  c.cutoff_len, c.save_steps = config.cutoff_len, 10 ** 6
  if "persona" in c:
    c.persona = ""
  return c


def held_out(lm, prompts, config, reward_model, persona: dict) -> dict:
  """Sampled answers to the held-out questions: mean reward-model score, name rate, KL to the
  SFT model (the policy's adapters off are the SFT model: every run starts from its export)."""
  tok = lm.tokenizer
  sampling = rollout.Sampling(config.max_new_tokens, 1.0, None, None, tok.eos_id,
                              tok.pad_id if tok.pad_id is not None else 0)
  ids = [p for p in prompts for _ in range(config.samples)]
  out = rollout.rollout(lm.model, ids, sampling, jax.random.key(config.seed), tokenizer=tok)
  scores = np.asarray(reward.score(reward_model, out["tokens"], out["lengths"]))
  kl = np.sum((out["old_logps"] - out["ref_logps"]) * out["mask"], axis=1)
  rate = lambda words: float(np.mean([words.lower() in a.lower() for a in out["answers"]]))
  return {"rm_score": float(np.mean(scores)), "kl": float(np.mean(kl)),
          "name_rate": rate(persona["name"]), "creator_rate": rate(persona["creator"]),
          "answers": out["answers"][::config.samples]}


def run_experiment(config, out_dir, show_progress: bool = True) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  persona = json.loads(Path(config.persona).read_text(encoding="utf-8"))
  minutes, steps, policies = {}, {}, {}

  def train(name, make, n_steps, model, **changes):
    c = stage_config(make, config, out_dir, name, n_steps, model)
    c.update(changes)
    tick = time.perf_counter()
    lm, result = pipeline.stage_runner(c.stage)(c, show_progress=show_progress)
    minutes[name], steps[name] = (time.perf_counter() - tick) / 60, result.steps
    files.write_json(out_dir / name / "history.json", result.history)
    return lm, result

  sft_lm, _ = train("sft", persona_lora.get_config, config.sft_steps, config.model,
                    dataset=config.sft_dataset)
  sft_dir = out_dir / "sft" / "export"
  export.export(sft_lm, sft_dir)
  start = str(sft_dir)
  policies["dpo"], dpo_result = train("dpo", persona_dpo.get_config, config.dpo_steps, start,
                                      dataset=config.pref_dataset)
  train("rm", persona_rm.get_config, config.rm_steps, start, dataset=config.pref_dataset)
  policies["ppo"], _ = train("ppo", persona_ppo.get_config, config.ppo_steps, start,
                             dataset=config.sft_dataset, reward_model=str(out_dir / "rm"),
                             max_new_tokens=config.max_new_tokens)
  policies["grpo"], _ = train("grpo", persona_grpo.get_config, config.grpo_steps, start,
                              dataset=config.sft_dataset,
                              reward_function=f"contains:{persona['creator']}",
                              max_new_tokens=config.max_new_tokens)

  sft_model = pretrained.load_model(start, quantized=False)
  tok = sft_model.tokenizer
  prompts = [tok.encode(tok.apply_chat_template([{"role": "user", "content": q}],
                                                add_generation_prompt=True))
             for q in persona["held_out_questions"]]
  reward_model, _ = reward.load_reward_model(out_dir / "rm")
  report = {"sft": held_out(sft_model, prompts, config, reward_model, persona)}
  for name, lm in policies.items():
    report[name] = held_out(lm, prompts, config, reward_model, persona)
  for name in report:
    report[name].update(steps=steps[name], minutes=minutes[name])
  files.write_json(out_dir / "posttrain.json", report)
  files.write_json(out_dir / "minutes.json", minutes)  # the reward model's run too

  methods = list(policies)
  per_step = {m: report[m]["kl"] / max(steps[m], 1) for m in methods}
  fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
  axes[0].bar(methods, [report[m]["kl"] for m in methods])
  axes[0].set_ylabel("KL to SFT (nats / answer)")
  axes[1].bar(methods, [per_step[m] for m in methods])
  axes[1].set_ylabel("KL to SFT per optimizer step")
  axes[2].bar(["sft"] + methods, [report[m]["rm_score"] for m in ["sft"] + methods])
  axes[2].set_ylabel("held-out reward-model score")
  fig.tight_layout()
  files.save_figure(fig, out_dir / "posttrain.png")

  ratio = per_step["dpo"] / max(per_step["ppo"], 1e-12)
  sft = report["sft"]
  return [
      tour.Claim.at_least(
          "DPO moves the model further from the SFT model per step than PPO (notebook: DPO "
          "'large adjustments', PPO 'small adjustments')",
          "KL-per-step ratio DPO / PPO", ratio, 1.0, fmt="{:.2f}x", figure="posttrain.png"),
      tour.Claim.at_least(
          "PPO raises the reward model's score of held-out answers above the SFT model's",
          f"score {sft['rm_score']:.3f} -> {report['ppo']['rm_score']:.3f}, gain",
          report["ppo"]["rm_score"] - sft["rm_score"], 0.0, fmt="{:+.3f}",
          figure="posttrain.png"),
      tour.Claim.at_least(
          "GRPO with the rule reward makes held-out answers name the creator more often",
          f"creator rate {sft['creator_rate']:.2f} -> {report['grpo']['creator_rate']:.2f}, "
          "gain", report["grpo"]["creator_rate"] - sft["creator_rate"], 0.01, fmt="{:+.2f}"),
      tour.Claim.at_least(
          "DPO learns its preference pairs (train reward accuracy at the last step)",
          "rewards/accuracies", dpo_result.history[-1]["rewards/accuracies"], 0.5,
          fmt="{:.2f}"),
  ]


def table(report: dict) -> tour.Table:
  rows = tuple((name, str(r["steps"]), f"{r['minutes']:.1f}", f"{r['rm_score']:.3f}",
                f"{r['name_rate']:.2f}", f"{r['creator_rate']:.2f}", f"{r['kl']:.3f}")
               for name, r in ((m, report[m]) for m in ("sft", "dpo", "ppo", "grpo")))
  return tour.Table(("method", "steps", "minutes", "RM score", "name rate", "creator rate",
                     "KL to SFT"), rows,
                    caption="Held-out answers after each method, from one SFT checkpoint")


def run(ctx: tour.Context) -> list[tour.Claim]:
  config = posttrain_tour.get_config("quick" if ctx.quick else None)
  config.seed = ctx.seed
  claims = run_experiment(config, ctx.out_dir)
  ctx.add_table(table(json.loads((ctx.out_dir / "posttrain.json").read_text())))
  return claims


chapter = tour.chapter("posttrain", "Post-training: DPO, reward model + PPO, GRPO", 6.5)(run)
