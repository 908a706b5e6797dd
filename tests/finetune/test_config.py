"""The fine-tuning config: LLaMA-Factory YAML in, and one sentence for the first bad field."""

import pytest

from research.finetune import config as config_lib


def test_llama_factory_yaml_is_accepted(tmp_path):
  (tmp_path / "train.yaml").write_text(
      "model_name_or_path: some/dir\nstage: sft\nfinetuning_type: lora\nlora_target: all\n"
      "dataset: a,b\ndataset_dir: data\ntemplate: qwen\ncutoff_len: 512\nlearning_rate: 1.0e-4\n"
      "num_train_epochs: 2.0\nbf16: true\nper_device_train_batch_size: 2\n")
  config = config_lib.from_yaml(tmp_path / "train.yaml")
  assert (config.model, config.dataset, config.cutoff_len, config.compute_type) == (
      "some/dir", "a,b", 512, "bf16")
  assert config.learning_rate == 1e-4 and config.per_device_train_batch_size == 2
  (tmp_path / "bad.yaml").write_text("learning_rat: 1.0\n")
  with pytest.raises(ValueError, match=r"bad\.yaml: setting 'learning_rat' is not a fine-tuning "
                     r"knob here; the nearest one is 'learning_rate'\."):
    config_lib.from_yaml(tmp_path / "bad.yaml")
  (tmp_path / "bad2.yaml").write_text("cutoff_len: many\n")
  with pytest.raises(ValueError, match="'cutoff_len'='many' should be a int"):
    config_lib.from_yaml(tmp_path / "bad2.yaml")


def test_broken_yaml_names_the_file_and_line(tmp_path):
  (tmp_path / "broken.yaml").write_text("stage: sft\ncutoff_len: [512\n")
  with pytest.raises(ValueError, match=r"broken\.yaml: line \d+: not valid YAML"):
    config_lib.from_yaml(tmp_path / "broken.yaml")
  (tmp_path / "list.yaml").write_text("- stage\n- sft\n")
  with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping"):
    config_lib.from_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize("field, value, message", [
    ("stage", "kto", r"stage='kto': expected one of \('sft', 'rm', 'ppo', 'grpo', 'dpo'\)"),
    ("pref_loss", "kto_pair", r"pref_loss='kto_pair': expected one of \('sigmoid'"),
    ("num_generations", 1, r"num_generations=1: GRPO compares"),
    ("compute_type", "fp8", "compute_type='fp8': expected one of"),
    ("lora_rank", 0, "lora_rank=0: expected a positive integer"),
    ("dataset", "", "dataset is empty"),
])
def test_validate_names_the_bad_field(field, value, message):
  config = config_lib.defaults()
  config.dataset = "toy"
  config_lib.validate(config)  # the defaults plus a dataset are valid
  config[field] = value
  with pytest.raises(ValueError, match=message):
    config_lib.validate(config)


# The post-training YAMLs as LLaMA-Factory's examples write them (train_lora/*_reward.yaml,
# *_ppo.yaml, *_dpo.yaml), with our paths; GRPO's knobs are ours.
STAGE_YAMLS = {
    "rm": "stage: rm\ndo_train: true\nfinetuning_type: lora\nlora_target: all\n"
          "dataset: dpo_en_demo\n",
    "ppo": "reward_model: saves/lora/reward\nstage: ppo\ndo_train: true\nfinetuning_type: lora\n"
           "lora_target: all\ndataset: identity,alpaca_en_demo\nmax_new_tokens: 512\ntop_k: 0\n"
           "top_p: 0.9\nreward_model_type: lora\n",
    "dpo": "stage: dpo\ndo_train: true\nfinetuning_type: lora\nlora_target: all\npref_beta: 0.1\n"
           "pref_loss: orpo\npref_ftx: 0.5\nsimpo_gamma: 0.3\ndataset: dpo_en_demo\n",
    "grpo": "stage: grpo\nfinetuning_type: lora\ndataset: identity\nnum_generations: 8\n"
            "grpo_beta: 0.02\nreward_function: valid_json\nppo_epochs: 1\n",
}


@pytest.mark.parametrize("stage", sorted(STAGE_YAMLS))
def test_post_training_yamls_are_read_with_their_knobs(tmp_path, stage):
  common = ("model_name_or_path: some/dir\ntemplate: llama3\ncutoff_len: 1024\n"
            "output_dir: saves/x\nlogging_steps: 10\nsave_steps: 500\nplot_loss: true\n"
            "per_device_train_batch_size: 1\ngradient_accumulation_steps: 8\n"
            "learning_rate: 1.0e-5\nnum_train_epochs: 3.0\nlr_scheduler_type: cosine\n"
            "warmup_ratio: 0.1\nbf16: true\nddp_timeout: 180000000\n")
  (tmp_path / "x.yaml").write_text(common + STAGE_YAMLS[stage])
  config = config_lib.from_yaml(tmp_path / "x.yaml")
  config_lib.validate(config)
  assert config.stage == stage and config.compute_type == "bf16"
  if stage == "ppo":
    assert (config.reward_model, config.max_new_tokens, config.top_k, config.top_p) == (
        "saves/lora/reward", 512, 0, 0.9)
  if stage == "dpo":
    assert (config.pref_loss, config.pref_ftx, config.simpo_gamma) == ("orpo", 0.5, 0.3)
  if stage == "grpo":
    assert (config.num_generations, config.grpo_beta, config.reward_function) == (
        8, 0.02, "valid_json")
