"""Fine-tuning knobs under LLaMA-Factory's names and defaults, from a config or its YAML.

A LLaMA-Factory YAML (train, predict, merge or inference: model_name_or_path, stage,
finetuning_type, dataset, cutoff_len, learning_rate, bf16: true, adapter_name_or_path,
export_dir, ...) is read as is. A setting of LLaMA-Factory's that changes nothing here
(dataloader_num_workers, ddp_timeout, template, ...) is named once in the run's log; a key
that is not LLaMA-Factory's stops with its name.
"""

import difflib
from pathlib import Path

import ml_collections


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = "smollm2-135m-instruct"  # packaged name, .gguf file or HF/export directory
  c.adapter_name_or_path = ""        # a PEFT adapter folder put on `model` (predict, export)
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
  c.disable_gradient_checkpointing = False  # SFT: keep the blocks' activations, not recompute
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
  c.export_gguf = "f32"              # ours, not LLaMA-Factory's: GGUF types written beside the
                                     # export, comma-separated f32,f16,q8_0 ("": none)
  c.resume = True                    # continue from output_dir's newest checkpoint
  return c


# LLaMA-Factory's names for our knobs.
_RENAMED = {"model_name_or_path": "model"}

# LLaMA-Factory settings (its ModelArguments, DataArguments, FinetuningArguments,
# GeneratingArguments and the Seq2SeqTrainingArguments its examples use) that change nothing
# on one CPU or JAX device: read, then named in the log as ignored. Grouped by dataclass.
# (packing and neat_packing are not done here yet: rows are padded to power-of-two length
# buckets instead (sft.bucket), which bounds the programs a run compiles.)
NO_OPS = frozenset("""
adapter_folder cache_dir use_fast_tokenizer resize_vocab split_special_tokens add_tokens
add_special_tokens new_special_tokens_config init_special_tokens model_revision
low_cpu_mem_usage rope_scaling flash_attn shift_attn mixture_of_depths use_unsloth
use_unsloth_gc enable_liger_kernel moe_aux_loss_coef
use_reentrant_gc upcast_layernorm upcast_lmhead_output train_from_scratch infer_backend
offload_folder use_kv_cache use_v1_kernels infer_dtype hf_hub_token ms_hub_token om_hub_token
print_param_status trust_remote_code quantization_method quantization_bit quantization_type
double_quantization quantization_device_map fp8 fp8_backend fp8_enable_fsdp_float8_all_gather
image_max_pixels image_min_pixels image_do_pan_and_scan crop_to_patches video_max_pixels
video_min_pixels video_fps video_maxlen use_audio_in_video audio_sampling_rate
export_size export_device export_quantization_bit export_quantization_dataset
export_quantization_nsamples export_quantization_maxlen export_legacy_format
export_hub_model_id vllm_maxlen vllm_gpu_util vllm_enforce_eager vllm_max_lora_rank
vllm_config sglang_maxlen sglang_mem_fraction sglang_tp_size sglang_config
sglang_lora_backend use_kt kt_optimize_rule kt_maxlen kt_use_cuda_graph kt_mode
kt_force_think

template media_dir mask_history streaming buffer_size mix_strategy interleave_probs
overwrite_cache preprocessing_batch_size preprocessing_num_workers eval_num_beams
ignore_pad_token_for_loss eval_on_each_dataset packing neat_packing tool_format
tokenized_path default_system enable_thinking

freeze_trainable_layers freeze_trainable_modules freeze_extra_modules additional_target
loraplus_lr_ratio loraplus_lr_embedding use_dora pissa_init pissa_iter pissa_convert
create_new_adapter module_dropout oft_rank oft_block_size oft_target pref_bco_weight
kto_chosen_weight kto_rejected_weight ref_model_adapters ref_model_quantization_bit
reward_model_adapters reward_model_quantization_bit ld_alpha use_galore galore_target
galore_rank galore_update_interval galore_scale galore_proj_type galore_layerwise use_apollo
apollo_target apollo_rank apollo_update_interval apollo_scale apollo_proj apollo_proj_type
apollo_scale_type apollo_layerwise apollo_scale_front use_badam badam_mode badam_start_block
badam_switch_mode badam_switch_interval badam_update_ratio badam_mask_mode badam_verbose
use_swanlab swanlab_project swanlab_workspace swanlab_run_name swanlab_mode swanlab_api_key
swanlab_logdir swanlab_lark_webhook_url swanlab_lark_secret pure_bf16 use_llama_pro
use_adam_mini use_mca use_muon use_dft_loss freeze_vision_tower freeze_multi_modal_projector
freeze_language_model compute_accuracy disable_shuffling early_stopping_steps plot_loss
include_effective_tokens_per_second

num_beams max_length repetition_penalty length_penalty system_message skip_special_tokens

do_eval eval_strategy evaluation_strategy save_strategy
logging_strategy save_total_limit save_only_model save_safetensors load_best_model_at_end
metric_for_best_model greater_is_better report_to run_name logging_dir logging_first_step
dataloader_num_workers dataloader_pin_memory dataloader_persistent_workers
dataloader_prefetch_factor dataloader_drop_last ddp_timeout ddp_find_unused_parameters
ddp_backend deepspeed fsdp fsdp_config gradient_checkpointing gradient_checkpointing_kwargs
torch_compile optim optim_args adafactor lr_scheduler_kwargs tf32 bf16_full_eval
fp16_full_eval half_precision_backend group_by_length remove_unused_columns push_to_hub
hub_model_id hub_token hub_strategy disable_tqdm include_num_input_tokens_seen
label_smoothing_factor generation_max_length generation_num_beams use_cpu no_cuda local_rank
full_determinism data_seed auto_find_batch_size log_level prediction_loss_only
eval_accumulation_steps eval_delay eval_on_start neftune_noise_alpha accelerator_config
torch_empty_cache_steps average_tokens_across_devices ignore_data_skip save_on_each_node
logging_nan_inf_filter skip_memory_metrics use_liger_kernel batch_eval_metrics
use_ray ray_run_name ray_storage_path ray_num_workers resources_per_worker
placement_strategy ray_init_kwargs
""".split())


def read_yaml(path) -> dict:
  """A YAML file's top-level mapping; a broken file is one sentence naming its line."""
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
  return raw


def from_yaml(path, log=print) -> ml_collections.ConfigDict:
  """A LLaMA-Factory YAML as our config; `log` gets one line naming the settings ignored
  here (None: no line); a key that is not LLaMA-Factory's stops with its name."""
  raw = read_yaml(path)
  config = defaults()
  ignored = []
  for key, value in raw.items():
    if key == "overwrite_output_dir":  # afresh over an old run, unless told to resume it
      if raw.get("resume_from_checkpoint") is None:
        config.resume = not value
      continue
    if key in ("bf16", "fp16"):
      if value:
        config.compute_type = key
      continue
    if key == "resume_from_checkpoint" and value not in (None, True, False):
      raise ValueError(f"{path}: setting 'resume_from_checkpoint'={value!r}: a run here "
                       "resumes from its output_dir's newest checkpoint; set output_dir to "
                       "that run's folder instead.")
    if key == "resume_from_checkpoint" and value is not None:
      config.resume = value
      continue
    if key in NO_OPS or key == "resume_from_checkpoint":
      ignored.append(f"{key}={value}")
      continue
    if key in ("dataset", "eval_dataset", "lora_target") and isinstance(value, list):
      value = ",".join(map(str, value))
    target = _RENAMED.get(key, key)
    if target not in config:
      near = difflib.get_close_matches(key, [*config.keys(), *_RENAMED, *NO_OPS], n=1)
      hint = f"; the nearest one is {near[0]!r}" if near else ""
      raise ValueError(f"{path}: setting {key!r} is not a fine-tuning knob here{hint}.")
    if value is not None:  # `key: null` keeps the default
      config[target] = _typed(path, key, value, config[target])
  if config.do_predict and "do_train" not in raw:
    config.do_train = False  # LLaMA-Factory's predict YAMLs say do_predict and nothing else
  if ignored and log is not None:
    log(f"{path}: ignored here: {', '.join(ignored)}")
  return config


def merge_from_yaml(path, log=print) -> ml_collections.ConfigDict:
  """LLaMA-Factory's merge file (examples/merge_lora): model, adapter and export_dir."""
  config = from_yaml(path, log)
  if not config.export_dir:
    raise ValueError(f"{path}: no export_dir, the folder the merged model is written to.")
  _check_adapter(path, config)
  return config


def inference_from_yaml(path, log=print) -> ml_collections.ConfigDict:
  """LLaMA-Factory's inference file (examples/inference): model, adapter and sampling."""
  config = from_yaml(path, log)
  _check_adapter(path, config)
  return config


def _check_adapter(path, config) -> None:
  if config.adapter_name_or_path and config.finetuning_type != "lora":
    raise ValueError(f"{path}: adapter_name_or_path is set with finetuning_type="
                     f"{config.finetuning_type!r}; an adapter is a LoRA one (finetuning_type: "
                     "lora), a full fine-tune is loaded as model_name_or_path.")


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
  if config.do_train and config.adapter_name_or_path:
    raise ValueError(f"config field adapter_name_or_path={config.adapter_name_or_path!r}: "
                     "training on top of an adapter is not supported here; merge it first "
                     "(python -m experiments.export) and train from the merged model.")
  if config.do_train and not config.dataset:
    raise ValueError("config field dataset is empty: name a dataset of dataset_info.json.")
