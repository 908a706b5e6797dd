"""LLaMA-Factory's example files, unchanged but for model, data and output paths: every key
honoured or named once as ignored, and the adapter, merge and inference files working."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from research import pretrained
from research.finetune import config as config_lib
from research.finetune import export
from research.finetune import pipeline
from research.finetune import predict as predict_lib
from research.nn import lora
from third_party import hf_names
from third_party import peft_adapter

# The shapes of LLaMA-Factory's examples (examples/train_lora, train_full, merge_lora,
# inference, extras/nlg_eval), written for this test with other values. {model}, {data},
# {out} and {adapter} are filled in per test.
TRAIN = {
    "train_lora/lora_sft": """
model_name_or_path: {model}
trust_remote_code: true
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 4
lora_target: all
dataset: toy,share
dataset_dir: {data}
template: llama3
cutoff_len: 64
max_samples: 100
overwrite_cache: true
preprocessing_num_workers: 8
dataloader_num_workers: 2
output_dir: {out}
logging_steps: 5
save_steps: 50
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none
per_device_train_batch_size: 2
gradient_accumulation_steps: 4
learning_rate: 2.0e-4
num_train_epochs: 2.0
lr_scheduler_type: cosine
warmup_ratio: 0.05
bf16: true
ddp_timeout: 90000000
resume_from_checkpoint: null
val_size: 0.1
per_device_eval_batch_size: 2
eval_strategy: steps
eval_steps: 50
""",
    "train_lora/lora_dpo": """
model_name_or_path: {model}
trust_remote_code: true
stage: dpo
do_train: true
finetuning_type: lora
lora_rank: 4
lora_target: all
pref_beta: 0.2
pref_loss: sigmoid
dataset: prefs
dataset_dir: {data}
template: qwen
cutoff_len: 64
max_samples: 100
overwrite_cache: true
preprocessing_num_workers: 4
output_dir: {out}
logging_steps: 5
save_steps: 50
plot_loss: true
overwrite_output_dir: true
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
learning_rate: 5.0e-6
num_train_epochs: 1.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 90000000
""",
    "train_lora/lora_reward": """
model_name_or_path: {model}
trust_remote_code: true
stage: rm
do_train: true
finetuning_type: lora
lora_rank: 4
lora_target: all
dataset: prefs
dataset_dir: {data}
template: llama3
cutoff_len: 64
overwrite_cache: true
preprocessing_num_workers: 4
output_dir: {out}
logging_steps: 5
save_steps: 50
plot_loss: true
overwrite_output_dir: true
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
learning_rate: 1.0e-4
num_train_epochs: 1.0
bf16: true
ddp_timeout: 90000000
""",
    "train_lora/lora_ppo": """
model_name_or_path: {model}
reward_model: {out}/reward
stage: ppo
do_train: true
finetuning_type: lora
lora_target: all
dataset: toy
dataset_dir: {data}
template: llama3
cutoff_len: 64
max_samples: 10
overwrite_cache: true
preprocessing_num_workers: 4
output_dir: {out}
logging_steps: 5
save_steps: 50
plot_loss: true
overwrite_output_dir: true
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
learning_rate: 1.0e-5
num_train_epochs: 1.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 90000000
max_new_tokens: 16
top_k: 0
top_p: 0.8
""",
    "train_full/full_sft": """
model_name_or_path: {model}
trust_remote_code: true
stage: sft
do_train: true
finetuning_type: full
deepspeed: examples/deepspeed/ds_z3_config.json
dataset: toy
dataset_dir: {data}
template: qwen
cutoff_len: 64
max_samples: null
overwrite_cache: true
preprocessing_num_workers: 8
dataloader_num_workers: 2
output_dir: {out}
logging_steps: 5
save_steps: 50
plot_loss: true
overwrite_output_dir: true
save_only_model: true
report_to: wandb
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
learning_rate: 1.0e-5
num_train_epochs: 2.0
lr_scheduler_type: cosine
warmup_ratio: 0.05
weight_decay: 0.01
max_grad_norm: 0.5
bf16: true
gradient_checkpointing: true
flash_attn: auto
ddp_timeout: 90000000
resume_from_checkpoint: null
""",
}
PREDICT = """
model_name_or_path: {model}
adapter_name_or_path: {adapter}
stage: sft
do_predict: true
finetuning_type: lora
eval_dataset: toy,share
dataset_dir: {data}
template: llama3
cutoff_len: 64
max_samples: 1
overwrite_cache: true
preprocessing_num_workers: 8
output_dir: {out}
overwrite_output_dir: true
per_device_eval_batch_size: 1
predict_with_generate: true
ddp_timeout: 90000000
"""
MERGE = """
model_name_or_path: {model}
adapter_name_or_path: {adapter}
template: llama3
trust_remote_code: true
export_dir: {out}
export_size: 1
export_device: cpu
export_legacy_format: false
"""
INFERENCE = {
    "inference/lora_sft": """
model_name_or_path: {model}
adapter_name_or_path: {adapter}
template: llama3
finetuning_type: lora
trust_remote_code: true
infer_backend: huggingface
""",
    "inference/vllm": """
model_name_or_path: {model}
template: llama3
infer_backend: vllm
vllm_enforce_eager: true
trust_remote_code: true
""",
}
# The settings that resume or start afresh, and the two spellings of precision, are not plain
# knobs.
SPECIAL = {"bf16", "fp16", "resume_from_checkpoint", "overwrite_output_dir"}


def _write(tmp_path, name, text, **paths):
  path = tmp_path / (name.replace("/", "_") + ".yaml")
  path.write_text(text.format(**paths))
  return path


def _check_every_key(path, config, lines):
  """Each key of the file is a knob with its value, or named exactly once as ignored."""
  raw = config_lib.read_yaml(path)
  ignored = {k for k in raw if k in config_lib.NO_OPS or
             (k == "resume_from_checkpoint" and raw[k] is None)}
  assert len(lines) == (1 if ignored else 0), lines
  for key in ignored:
    assert lines[0].count(f" {key}={raw[key]}") == 1, (key, lines[0])
  for key, value in raw.items():
    if key in ignored or key in SPECIAL or value is None:
      continue
    knob = config[config_lib._RENAMED.get(key, key)]  # pylint: disable=protected-access
    assert knob == value or knob == str(value), (key, knob, value)


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_training_examples_are_read_unchanged(tiny_model_dir, dataset_dir, tmp_path, name):
  path = _write(tmp_path, name, TRAIN[name], model=tiny_model_dir, data=dataset_dir,
                out=tmp_path / "out")
  lines = []
  config = config_lib.from_yaml(path, log=lines.append)
  config_lib.validate(config)
  _check_every_key(path, config, lines)
  assert config.compute_type == "bf16" and config.do_train
  assert lines[0].startswith(f"{path}: ignored here: ")
  assert config.resume is False  # overwrite_output_dir: true trains afresh, as LLaMA-Factory does


@pytest.mark.parametrize("overwrite,resume_from,resumes", [
    ("true", "null", False), ("false", "null", True), ("true", "true", True),
    ("false", "false", False)])
def test_overwrite_output_dir_starts_afresh_unless_told_to_resume(tmp_path, overwrite,
                                                                  resume_from, resumes):
  path = tmp_path / "run.yaml"
  path.write_text(f"overwrite_output_dir: {overwrite}\nresume_from_checkpoint: {resume_from}\n")
  assert config_lib.from_yaml(path, log=None).resume is resumes


def test_a_key_that_is_not_llama_factorys_stops_with_its_name(tmp_path):
  path = tmp_path / "typo.yaml"
  path.write_text("stage: sft\ndataloader_num_worker: 4\n")
  with pytest.raises(ValueError, match=r"typo\.yaml: setting 'dataloader_num_worker' is not .*"
                     r"nearest one is 'dataloader_num_workers'"):
    config_lib.from_yaml(path, log=None)
  path.write_text("resume_from_checkpoint: saves/old/checkpoint-500\n")
  with pytest.raises(ValueError, match=r"'resume_from_checkpoint'=.*output_dir"):
    config_lib.from_yaml(path, log=None)
  path.write_text("stage: sft\ndataset: toy\nadapter_name_or_path: saves/lora\n")
  with pytest.raises(ValueError, match="adapter_name_or_path=.*training on top of an adapter"):
    config_lib.validate(config_lib.from_yaml(path, log=None))


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
  """Our PEFT adapter on the tiny llama with a B away from zero, so it changes the logits."""
  lm = pretrained.load_model(str(tiny_model_dir))
  lora.apply_lora(lm.model, rank=4, alpha=8.0, seed=1)
  for i, (_, layer) in enumerate(lora.lora_layers(lm.model)):
    rng = np.random.default_rng(i)
    layer.lora_b.set_value(jnp.asarray(rng.normal(0, 0.3, layer.lora_b.shape), jnp.float32))
  return export.write_adapter(lm.model, tmp_path_factory.mktemp("adapter"), str(tiny_model_dir))


def _logits(lm):
  tokens = jnp.asarray(np.arange(6, 18).reshape(2, 6))
  return np.asarray(lm.model(tokens)[0])


def test_the_predict_example_predicts_with_its_adapter(tiny_model_dir, dataset_dir, adapter_dir,
                                                       tmp_path, monkeypatch):
  path = _write(tmp_path, "nlg_eval/predict", PREDICT, model=tiny_model_dir, data=dataset_dir,
                out=tmp_path / "predict", adapter=adapter_dir)
  lines = []
  config = config_lib.from_yaml(path, log=lines.append)
  _check_every_key(path, config, lines)
  predict_lib.check(config)
  seen = []
  monkeypatch.setattr(predict_lib, "predict", lambda lm, c, show: seen.append(lm) or {})
  monkeypatch.setattr(predict_lib, "score_line", lambda metrics: "")
  pipeline.run(config, show_progress=False)
  written = peft_adapter.read(adapter_dir).weights
  layers = {hf_names.module_to_hf(p): layer for p, layer in lora.lora_layers(seen[0].model)}
  assert set(layers) == set(written)  # the predicting model carries the adapter, all of it
  for module, (a_RxI, b_OxR) in written.items():
    np.testing.assert_array_equal(np.asarray(layers[module].lora_a[...]), a_RxI)
    np.testing.assert_array_equal(np.asarray(layers[module].lora_b[...]), b_OxR)


def test_the_merge_example_writes_the_merged_model(tiny_model_dir, adapter_dir, tmp_path):
  path = _write(tmp_path, "merge_lora/lora_sft", MERGE, model=tiny_model_dir,
                adapter=adapter_dir, out=tmp_path / "merged")
  lines = []
  config = config_lib.merge_from_yaml(path, log=lines.append)
  _check_every_key(path, config, lines)
  out = export.merge_adapter(config.model, config.adapter_name_or_path, config.export_dir)
  merged = pretrained.load_model(str(out))
  assert not lora.lora_layers(merged.model)  # the adapter is folded into the weights
  tuned = pretrained.load_model(str(tiny_model_dir), adapter=adapter_dir)
  base = pretrained.load_model(str(tiny_model_dir))
  assert np.abs(_logits(tuned) - _logits(base)).max() > 1e-2  # the adapter does something
  np.testing.assert_allclose(_logits(merged), _logits(tuned), rtol=1e-5, atol=1e-5)
  again = pretrained.load_model(str(tiny_model_dir), adapter=out / "adapter")  # re-exported
  np.testing.assert_allclose(_logits(again), _logits(tuned), rtol=1e-6, atol=1e-6)
  (tmp_path / "no_export.yaml").write_text(f"model_name_or_path: {tiny_model_dir}\n")
  with pytest.raises(ValueError, match=r"no_export\.yaml: no export_dir"):
    config_lib.merge_from_yaml(tmp_path / "no_export.yaml", log=None)


@pytest.mark.parametrize("name", sorted(INFERENCE))
def test_inference_examples_give_the_model_and_adapter(tiny_model_dir, adapter_dir, tmp_path,
                                                       name):
  from experiments import chat  # pylint: disable=g-import-not-at-top
  path = _write(tmp_path, name, INFERENCE[name], model=tiny_model_dir, adapter=adapter_dir)
  lines = []
  config = config_lib.inference_from_yaml(path, log=lines.append)
  _check_every_key(path, config, lines)
  settings = chat.from_inference_yaml(path)
  assert settings["model"] == str(tiny_model_dir)
  assert settings["adapter"] == (str(adapter_dir) if "adapter" in INFERENCE[name] else None)
  assert set(settings) == {"model", "adapter"}  # no sampling setting given: the flags rule


def _env():
  return dict(os.environ)  # the test run's compilation cache, which every script uses


def test_export_and_chat_scripts_take_the_yamls(tiny_model_dir, adapter_dir, tmp_path):
  merge = _write(tmp_path, "merge", MERGE, model=tiny_model_dir, adapter=adapter_dir,
                 out=tmp_path / "merged")
  run = subprocess.run([sys.executable, "-m", "experiments.export", f"--yaml={merge}",
                        "--gguf=f16,q8_0"],
                       capture_output=True, text=True, env=_env(), timeout=300, check=False)
  assert run.returncode == 0, run.stderr
  assert run.stdout.count("ignored here: ") == 1 and "export_size=1" in run.stdout
  assert (tmp_path / "merged" / "config.json").is_file()
  assert (tmp_path / "merged" / "adapter" / "adapter_config.json").is_file()
  # --gguf overrides the file's export_gguf (f32 by default)
  assert sorted(p.name for p in (tmp_path / "merged").glob("*.gguf")) == [
      "model.f16.gguf", "model.q8_0.gguf"]
  modelfile = (tmp_path / "merged" / "Modelfile").read_text()
  assert modelfile.startswith("FROM ./model.f16.gguf\n")
  inference = tmp_path / "inference.yaml"
  inference.write_text(INFERENCE["inference/lora_sft"].format(
      model=tiny_model_dir, adapter=adapter_dir) + "do_sample: false\nmax_new_tokens: 3\n")
  run = subprocess.run([sys.executable, "-m", "experiments.chat", f"--yaml={inference}",
                        "--prompt=t10 t11"], capture_output=True, text=True, env=_env(),
                       timeout=300, check=False)
  assert run.returncode == 0, run.stderr
  assert run.stdout.count("ignored here: ") == 1 and "infer_backend=huggingface" in run.stdout
  assert len(run.stdout.splitlines()) == 2  # the ignored line, then the answer


def test_the_server_loads_the_adapter(tiny_model_dir, adapter_dir, tmp_path):
  from research.serve import services  # pylint: disable=g-import-not-at-top
  from research.serve import settings  # pylint: disable=g-import-not-at-top
  served = services.Services(settings.Settings(model=str(tiny_model_dir), adapter=adapter_dir,
                                               work_dir=tmp_path)).lm()
  assert {hf_names.module_to_hf(p) for p, _ in lora.lora_layers(served.model)} == set(
      peft_adapter.read(adapter_dir).weights)
