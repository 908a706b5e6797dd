"""Fine-tuning knobs under LLaMA-Factory's names and defaults, from a config or its YAML.

A LLaMA-Factory training YAML (model_name_or_path, stage, finetuning_type, dataset,
dataset_dir, cutoff_len, learning_rate, num_train_epochs, bf16: true, ...) is accepted as is.
"""

import difflib
from pathlib import Path

import ml_collections


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = "smollm2-135m-instruct"  # packaged name, .gguf file or HF/export directory
  c.stage = "sft"                    # sft | rm | ppo | grpo | dpo
  c.finetuning_type = "lora"         # lora | full
  c.dataset_dir = "data"             # the folder holding dataset_info.json
  c.dataset = ""                     # comma-separated names of dataset_info.json
  c.cutoff_len = 2048                # tokens kept of each conversation
  c.max_samples = 0                  # 0: all
  c.val_size = 0.0                   # < 1: fraction, >= 1: count
  c.train_on_prompt = False          # True: the prompt tokens count in the loss too
  c.learning_rate = 5e-5             # peak rate after warmup
  c.num_train_epochs = 3.0           # passes over the training rows
  c.max_steps = 0                    # > 0 overrides num_train_epochs
  c.max_grad_norm = 1.0              # clip the global gradient norm (0: no clipping)
  c.per_device_train_batch_size = 1  # B: rows per micro-batch
  c.gradient_accumulation_steps = 8  # A: micro-batches per optimizer step
  c.lr_scheduler_type = "cosine"     # linear | cosine | constant
  c.warmup_ratio = 0.0               # warmup as a fraction of the steps (when warmup_steps is 0)
  c.warmup_steps = 0                 # linear warmup steps from 0 to learning_rate
  c.weight_decay = 0.0               # AdamW decay on 2-D weights
  c.adam_beta1 = 0.9                 # Adam's b1 (first-moment decay)
  c.adam_beta2 = 0.999               # Adam's b2 (second-moment decay)
  c.adam_epsilon = 1e-8              # Adam's eps
  c.compute_type = "fp32"            # fp32 | bf16 | fp16 (dynamic loss scaling)
  c.lora_rank = 8                    # r of B A
  c.lora_alpha = 0                   # 0: 2 x lora_rank
  c.lora_dropout = 0.0               # inverted dropout on the LoRA path in training
  c.lora_target = "all"              # all | q_proj,v_proj,... | a regex on HF module names
  c.use_rslora = False               # scale alpha / sqrt(r) instead of alpha / r
  c.pref_beta = 0.1                  # beta of the preference losses (DPO's KL strength)
  c.pref_loss = "sigmoid"            # sigmoid (DPO) | hinge | ipo | orpo | simpo
  c.pref_ftx = 0.0                   # weight of the chosen answer's SFT loss added to DPO's
  c.simpo_gamma = 0.5                # SimPO's target reward margin
  c.dpo_label_smoothing = 0.0        # cDPO: the chance a preference label is flipped
  c.reward_model = ""                # PPO: an rm stage's output_dir (adapter + value head)
  c.reward_model_type = "lora"       # lora | full: either is read from the rm stage's folder
  c.reward_function = ""             # GRPO without a reward model: contains:WORD | valid_json
  c.ref_model = ""                   # "": the policy with its adapters off (LoRA)
  c.ppo_buffer_size = 1              # PPO: rollout mini-batches kept per optimisation round
  c.ppo_epochs = 4                   # PPO/GRPO: passes over each round of rollouts
  c.ppo_score_norm = False           # PPO: normalise rewards by their running mean and std
  c.ppo_target = 6.0                 # PPO: the KL (nats per answer) the adaptive penalty aims at
  c.ppo_whiten_rewards = False       # PPO: whiten the per-token rewards before GAE
  c.num_generations = 4              # GRPO: G answers sampled per prompt
  c.grpo_beta = 0.04                 # GRPO: weight of the KL term to the reference
  c.do_sample = True                 # rollouts and predictions sample (False: greedy)
  c.temperature = 0.95               # sampling temperature (LLaMA-Factory's default)
  c.top_p = 0.7                      # nucleus threshold
  c.top_k = 50                       # most likely tokens kept
  c.max_new_tokens = 64              # answer length of rollouts and predictions
  c.do_train = True                  # False: only predict (with do_predict)
  c.do_predict = False               # generate answers for eval_dataset and score them
  c.predict_with_generate = False    # predict by generating (LLaMA-Factory needs it for BLEU)
  c.eval_dataset = ""                # comma-separated names of dataset_info.json to predict on
  c.per_device_eval_batch_size = 1   # prompts generated at once when predicting
  c.logging_steps = 5                # a metrics row every this many steps
  c.save_steps = 100                 # a checkpoint every this many steps (and at the end)
  c.eval_steps = 0                   # 0: evaluate at logging steps when val_size > 0
  c.seed = 42                        # data order, LoRA init and dropout
  c.output_dir = "runs/finetune"     # metrics, checkpoints, loss curve
  c.export_dir = ""                  # the merged model and its adapter ("": no export)
  c.resume = True                    # continue from output_dir's newest checkpoint
  return c


# LLaMA-Factory YAML keys that mean the same as ours under another name, or as a flag.
_RENAMED = {"model_name_or_path": "model", "adapter_name_or_path": None, "template": None,
            "overwrite_output_dir": None, "overwrite_cache": None,
            "preprocessing_num_workers": None, "plot_loss": None, "report_to": None,
            "ddp_timeout": None,
            "eval_strategy": None, "trust_remote_code": None, "save_only_model": None}


def from_yaml(path) -> ml_collections.ConfigDict:
  """A LLaMA-Factory training YAML as our config; unknown keys stop with their name."""
  import yaml  # pylint: disable=g-import-not-at-top
  path = Path(path)
  try:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
  except yaml.YAMLError as e:
    line = getattr(getattr(e, "problem_mark", None), "line", None)
    where = f"line {line + 1}: " if line is not None else ""
    problem = getattr(e, "problem", None)
    raise ValueError(f"{path}: {where}not valid YAML" + (f" ({problem})." if problem else ".")) \
        from e
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: byte {e.start}: not UTF-8 text.") from None
  if not isinstance(raw, dict):
    raise ValueError(f"{path}: expected a mapping of settings.")
  config = defaults()
  for key, value in raw.items():
    if key in ("bf16", "fp16"):
      if value:
        config.compute_type = key
      continue
    if key in ("dataset", "eval_dataset", "lora_target") and isinstance(value, list):
      value = ",".join(map(str, value))
    target = _RENAMED.get(key, key)
    if target is None:
      continue  # a LLaMA-Factory setting with no effect here
    if target not in config:
      near = difflib.get_close_matches(key, [*config.keys(), *_RENAMED], n=1)
      hint = f"; the nearest one is {near[0]!r}" if near else ""
      raise ValueError(f"{path}: setting {key!r} is not a fine-tuning knob here{hint}.")
    if value is not None:  # `key: null` keeps the default
      config[target] = _typed(path, key, value, config[target])
  if config.do_predict and "do_train" not in raw:
    config.do_train = False  # LLaMA-Factory's predict YAMLs say do_predict and nothing else
  if not config.do_train and raw.get("adapter_name_or_path"):
    # predicting with the base model alone would score the wrong model without a word
    raise ValueError(f"{path}: setting 'adapter_name_or_path' is not loaded here; to predict "
                     "with a tuned model set model_name_or_path to its export_dir (the merged "
                     "model).")
  return config


def _typed(path, key: str, value, default):
  """value as the type of the knob's default; a quoted "false" is not True, 2.5 is not 2."""
  kind = type(default)
  fits = {bool: lambda v: isinstance(v, bool),
          int: lambda v: not isinstance(v, bool) and (
              isinstance(v, int) or (isinstance(v, float) and v.is_integer())
              or (isinstance(v, str) and v.strip().lstrip("+-").isdigit())),
          float: lambda v: not isinstance(v, bool) and isinstance(v, (int, float, str)),
          str: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)}
  try:
    if fits.get(kind, lambda v: True)(value):
      return kind(value)
  except (TypeError, ValueError):
    pass
  raise ValueError(f"{path}: setting {key!r}={value!r} should be a {kind.__name__}.")


def validate(config) -> None:
  """One sentence for the first bad field."""
  choices = {"stage": ("sft", "rm", "ppo", "grpo", "dpo"), "finetuning_type": ("lora", "full"),
             "pref_loss": ("sigmoid", "hinge", "ipo", "orpo", "simpo"),
             "reward_model_type": ("lora", "full"),
             "lr_scheduler_type": ("linear", "cosine", "constant"),
             "compute_type": ("fp32", "bf16", "fp16")}
  for field, allowed in choices.items():
    if config[field] not in allowed:
      raise ValueError(f"config field {field}={config[field]!r}: expected one of {allowed}.")
  for field in ("cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps",
                "lora_rank", "ppo_buffer_size", "ppo_epochs", "max_new_tokens",
                "per_device_eval_batch_size"):
    if config[field] < 1:
      raise ValueError(f"config field {field}={config[field]}: expected a positive integer.")
  for field in ("learning_rate", "adam_epsilon"):
    if not config[field] > 0:
      raise ValueError(f"config field {field}={config[field]}: expected a positive number.")
  if not config.max_steps and not config.num_train_epochs > 0:
    raise ValueError(f"config field num_train_epochs={config.num_train_epochs}: expected a "
                     "positive number (or max_steps > 0).")
  for field in ("max_steps", "max_samples", "val_size", "warmup_steps", "weight_decay",
                "max_grad_norm", "lora_alpha", "pref_beta", "pref_ftx", "logging_steps",
                "save_steps"):
    if config[field] < 0:
      raise ValueError(f"config field {field}={config[field]}: expected 0 or more.")
  for field, top, closed in (("warmup_ratio", 1.0, True), ("lora_dropout", 1.0, False),
                             ("adam_beta1", 1.0, False), ("adam_beta2", 1.0, False),
                             ("dpo_label_smoothing", 0.5, False)):
    if not (0 <= config[field] <= top if closed else 0 <= config[field] < top):
      raise ValueError(f"config field {field}={config[field]}: expected a value in "
                       f"[0, {top}{']' if closed else ')'}.")
  if config.num_generations < 2:
    raise ValueError(f"config field num_generations={config.num_generations}: GRPO compares "
                     "answers within a group, so it needs at least 2.")
  if config.do_train and not config.dataset:
    raise ValueError("config field dataset is empty: name a dataset of dataset_info.json.")
