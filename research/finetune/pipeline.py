"""One fine-tuning job end to end: train (SFT, reward model, PPO, GRPO or DPO), export, the
persona check, and LLaMA-Factory's predict (do_predict; do_train false predicts only)."""

import importlib
from pathlib import Path

from flax import nnx

from research import files
from research import pretrained
from research.finetune import export
from research.finetune import persona as persona_lib
from research.finetune import predict as predict_lib
from research.nn import lora

# stage -> the module whose run(config, show_progress, stop_at) trains it
STAGES = {"sft": "sft", "rm": "reward", "ppo": "ppo", "grpo": "grpo", "dpo": "dpo"}


def stage_runner(stage: str):
  if stage not in STAGES:
    raise ValueError(f"config field stage={stage!r}: expected one of {tuple(STAGES)}.")
  return importlib.import_module(f"research.finetune.{STAGES[stage]}").run


def leave_adapter(lm, result, config) -> None:
  """A finished LoRA run's PEFT adapter in output_dir, where LLaMA-Factory leaves it and its
  merge and inference files (adapter_name_or_path) look; rm writes its own there."""
  model = getattr(lm, "model", None)
  if (config.stage == "rm" or getattr(result, "stopped", None) is not None
      or not isinstance(model, nnx.Module) or not lora.lora_layers(model)):
    return
  base = Path(config.model)
  export.write_adapter(model, config.output_dir,
                       str(base.resolve()) if base.exists() else config.model,
                       config.lora_dropout, config.use_rslora)


def run(config, check_base: bool = True, show_progress: bool = True) -> dict:
  """Trains per `config`, exports to `config.export_dir` when set, runs the persona check when
  `config.persona` names a persona file; writes and returns output_dir/summary.json."""
  if config.get("do_predict", False):
    predict_lib.check(config)  # before training, not after it
  if config.get("do_train", True):
    lm, result = stage_runner(config.stage)(config, show_progress=show_progress)
    summary = {"stage": config.stage, "steps": result.steps,
               "final_loss": result.history[-1]["loss"] if result.history else None,
               "trainable_parameters": result.trainable_parameters,
               "base_parameters": result.frozen_parameters,
               "tokens_per_s": result.tokens_per_s, "first_step_s": result.first_step_s,
               "s_per_step": result.ms_per_iter / 1000,
               "compiled_steps": result.compiled_steps, "history": result.history[-1:],
               "evals": result.evals[-1:]}
    print(f"finetune: {result.steps} steps ({result.compiled_steps} compiled a program), "
          f"final loss {summary['final_loss']}; first step {result.first_step_s:.1f} s, the "
          f"others {result.ms_per_iter / 1000:.2f} s/step, {result.tokens_per_s:.0f} tokens/s")
    leave_adapter(lm, result, config)
  else:  # predict only: config.model as it is (a base model or an export), and its adapter
    lm = pretrained.load_model(config.model, adapter=config.get("adapter_name_or_path") or None)
    summary = {"stage": config.stage, "steps": 0}
  if config.export_dir and config.get("do_train", True):
    export.export(lm, config.export_dir, lora_dropout=config.lora_dropout,
                  rslora=config.use_rslora,
                  gguf_types=export.gguf_types(config.get("export_gguf", "f32")))
    print(f"finetune: merged model in {config.export_dir}, PEFT adapter in "
          f"{Path(config.export_dir) / 'adapter'}")
  if config.get("persona", ""):
    persona = persona_lib.load_persona(config.persona)
    tuned = pretrained.load_model(config.export_dir) if config.export_dir else lm
    rate, rows = persona_lib.name_rate(tuned, persona, show_progress)
    summary.update(persona=persona["name"], tuned_name_rate=rate, tuned_answers=rows)
    for row in rows:
      print(f"  Q: {row['question']}\n  A: {row['answer']}")
    line = f"persona: the tuned model says {persona['name']!r} in {100 * rate:.0f}%"
    if check_base:
      base_rate, base_rows = persona_lib.name_rate(pretrained.load_model(config.model),
                                                   persona, show_progress)
      summary.update(base_name_rate=base_rate, base_answers=base_rows)
      line += f", the base model in {100 * base_rate:.0f}%"
    print(line + " of held-out questions")
  if config.get("do_predict", False):
    metrics = predict_lib.predict(lm, config, show_progress)
    summary.update(metrics)
    print(predict_lib.score_line(metrics) + f" on {config.eval_dataset} "
          f"({Path(config.output_dir) / predict_lib.PREDICTIONS})")
  files.write_json(Path(config.output_dir) / "summary.json", summary)
  return summary
