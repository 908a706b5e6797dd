"""The reward model (stage "rm"): a scalar value head on the LM, trained on preference pairs.

  r(x, y) = v at the last real token of prompt + answer        (value_head.last_token_values)
  loss    = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))     (Bradley-Terry, pairwise)

At the end the output_dir also holds what PPO loads as `reward_model`: the PEFT adapter
(adapter_model.safetensors, adapter_config.json) or, in full fine-tuning, the tuned model
under model/; value_head.safetensors under TRL's names; reward_model.json naming the base.

  lm, result = reward.run(config)                    # config.stage == "rm"
  rm, tokenizer = reward.load_reward_model(config.output_dir)
  scores_B = reward.score(rm, tokens_BxT, lengths_B)   # right-padded rows
"""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from research import files
from research import pretrained
from research.data import sft as sft_data
from research.finetune import dpo
from research.finetune import export
from research.finetune import rollout
from research.finetune import sft
from research.finetune import trainer
from research.nn import lora
from research.nn import losses
from research.nn import value_head

INFO_FILE = "reward_model.json"
HEAD_FILE = "value_head.safetensors"
FULL_MODEL_DIR = "model"  # full fine-tuning: the tuned LM, an HF directory


def pair_scores(model, batch, dropout_key=None):
  """(r chosen, r rejected), both halves in one forward pass."""
  both = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]])
  values_BxL = model.values(both("tokens"), dropout_key=dropout_key, remat=True)
  scores = value_head.last_token_values(values_BxL, both("lengths"))
  half = batch["chosen_tokens"].shape[0]
  return scores[:half], scores[half:]


def reward_objective(model, batch, reference=None, dropout_key=None):
  del reference
  return losses.pairwise_reward_loss(*pair_scores(model, batch, dropout_key))


def reward_arrays(rows, pad_id: int) -> dict:
  """rows: (chosen ids, labels, rejected ids, labels) -> whole sequences, right-padded to one
  length (the score reads the last real token, so nothing is shifted off)."""
  length = sft.bucket(max(max(len(r[0]), len(r[2])) for r in rows))
  out = {}
  for name, index in (("chosen", 0), ("rejected", 2)):
    tokens = np.full((len(rows), length), pad_id, np.int32)
    for i, row in enumerate(rows):
      tokens[i, :len(row[index])] = row[index]
    out[f"{name}_tokens"] = tokens
    out[f"{name}_lengths"] = np.array([len(r[index]) for r in rows], np.int32)
  out["lengths"] = out["chosen_lengths"] + out["rejected_lengths"]  # tokens through the model
  return out


def check_ranking(config) -> None:
  """One sentence when a named dataset has no chosen/rejected pairs."""
  info = sft_data.load_dataset_info(config.dataset_dir)
  for name in (n.strip() for n in config.dataset.split(",")):
    if name in info and not info[name].get("ranking", False):
      raise sft_data.DataError(
          f"{Path(config.dataset_dir) / 'dataset_info.json'}: dataset {name!r} is not a "
          "preference set; the reward model trains on chosen/rejected pairs (\"ranking\": true).")


def run(config, show_progress=True, stop_at=None):
  """Trains the reward model; returns (lm with the tuned LM, result). A run that reaches its
  last step writes the reward model folder into config.output_dir."""
  check_ranking(config)
  lm, _, train_examples, val_examples = sft.prepare(config)
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  pad_id = lm.tokenizer.pad_id if lm.tokenizer.pad_id is not None else 0
  model = value_head.WithValueHead(lm.model, rngs=nnx.Rngs(config.seed))
  batches = sft.StepBatches(dpo.encode_pairs(lm.tokenizer, train_examples, config, source),
                            config.per_device_train_batch_size,
                            config.gradient_accumulation_steps, pad_id, config.seed,
                            reward_arrays)
  val = None
  if val_examples:
    rows = dpo.encode_pairs(lm.tokenizer, val_examples, config, source)
    size = config.per_device_train_batch_size
    val = [reward_arrays(rows[i:i + size], pad_id) for i in range(0, len(rows), size)]
  result = trainer.train(model, config, batches, val, reward_objective,
                         trainable=value_head.trainable(config.finetuning_type),
                         show_progress=show_progress, stop_at=stop_at)
  tuned = result.model
  lm.model = tuned.lm
  finished = result.steps >= trainer.total_steps(config, batches.steps_per_epoch)
  if finished and result.stopped is None:  # a run cut short leaves only its checkpoints
    folder = save_reward_model(tuned, lm, config)
    if show_progress:
      print(f"rm: the reward model (adapter or model, value head) in {folder}")
  return lm, result


def _base_name(model: str) -> str:
  """The model source as given, a path made absolute so the folder loads from anywhere."""
  path = Path(model)
  return str(path.resolve()) if path.exists() else model


def save_reward_model(model, lm, config, directory=None) -> Path:
  """The adapter (or the full model), value_head.safetensors and reward_model.json."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  directory = Path(directory or config.output_dir)
  directory.mkdir(parents=True, exist_ok=True)
  base = _base_name(config.model)
  if lora.lora_layers(model.lm):
    export.write_adapter(model.lm, directory, base, config.lora_dropout, config.use_rslora)
  else:
    export.export(pretrained.PretrainedLM(model.lm, lm.tokenizer, lm.config, base),
                  directory / FULL_MODEL_DIR)
    base = FULL_MODEL_DIR
  head = {"v_head.summary.weight": np.asarray(model.v_head.kernel[...], np.float32).T,  # 1 x D
          "v_head.summary.bias": np.asarray(model.v_head.bias[...], np.float32)}        # 1
  with files.atomic_path(directory / HEAD_FILE) as path:
    save_file({k: np.ascontiguousarray(v) for k, v in head.items()}, str(path),
              metadata={"format": "pt"})
  files.write_json(directory / INFO_FILE, {"base_model": base,
                                           "finetuning_type": config.finetuning_type})
  return directory


def apply_adapter(model, directory) -> None:
  """Wraps `model`'s linears named in a PEFT adapter folder and loads its A and B."""
  pretrained.apply_adapter(model, directory)


def load_reward_model(path):
  """(WithValueHead on the base model with the adapter applied, tokenizer) from a folder
  written by the rm stage."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  path = Path(path)
  info_path = path / INFO_FILE
  if not info_path.is_file():
    raise FileNotFoundError(f"reward_model {str(path)!r}: no {INFO_FILE}; expected the "
                            "output_dir of an rm stage.")
  info = json.loads(info_path.read_text(encoding="utf-8"))
  base = info["base_model"]
  lm = pretrained.load_model(str(path / base) if (path / base).is_dir() else base,
                            quantized=False)
  if (path / "adapter_config.json").is_file():
    apply_adapter(lm.model, path)
  model = value_head.WithValueHead(lm.model, rngs=nnx.Rngs(0))
  head = load_file(str(path / HEAD_FILE))
  weight, bias = head["v_head.summary.weight"], head["v_head.summary.bias"]
  if weight.shape != (1, lm.config.width) or bias.shape != (1,):
    raise ValueError(f"{path / HEAD_FILE}: v_head.summary.weight {weight.shape} and bias "
                     f"{bias.shape}; the model expects (1, {lm.config.width}) and (1,).")
  model.v_head.kernel.set_value(jnp.asarray(weight.T, jnp.float32))
  model.v_head.bias.set_value(jnp.asarray(bias, jnp.float32))
  model.eval()
  return model, lm.tokenizer


def score_rows(reward_model, tokens_NxT, lengths_N, chunk: int) -> np.ndarray:
  """`score` over N rows, `chunk` at a time (one compiled shape)."""
  return rollout.in_chunks(lambda t, n: score(reward_model, t, n), chunk, tokens_NxT,
                           lengths_N)


@nnx.jit
def score(reward_model, tokens_BxT, lengths_B):
  """r = v at each right-padded row's last real token (position length - 1)."""
  return value_head.last_token_values(reward_model.values(tokens_BxT), lengths_B)
