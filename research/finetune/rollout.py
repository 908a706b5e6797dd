"""Rollouts, what PPO and GRPO share: prompts from a LLaMA-Factory dataset, answers sampled by
the policy under jit, and the per-token log-probs of the policy and of the reference.

  prompts = rollout.encode_prompts(lm.tokenizer, examples, config, source)
  out = rollout.rollout(model, [p.ids for p in prompts], rollout.Sampling.from_config(
      config, lm.tokenizer), key)

A rollout is a dict of arrays over its rows (prompt + answer), laid out as SFT's are, right-
padded to L + 1 tokens:

  tokens      B x (L+1)  prompt, answer (EOS included), padding
  inputs      B x L      tokens[:, :-1]
  targets     B x L      tokens[:, 1:]
  mask        B x L      1.0 where the target is a generated token (up to and including EOS)
  old_logps   B x L      log pi_old(target_t | tokens <= t), 0 off the mask: the sampling
                         policy's own softmax (temperature 1, unfiltered), as the loss sees it
  ref_logps   B x L      the same under the reference
  lengths     B          real tokens (prompt + answer): the loop's tokens/s counts them
  prompt_lengths, answer_lengths   B

plus "answers" (the decoded answer texts, EOS dropped) and the rollout's "seconds" and
"tokens_per_s" (generated tokens / seconds of sampling). The reference is the policy with
every LoRA parameter at zero (no second copy of the weights), or a model of its own
(`ref_model`, or the starting weights under full fine-tuning).
"""

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research import pretrained
from research.data import sft as sft_data
from research.finetune import sft
from research.generate import decode
from research.nn import lora
from research.nn import losses


@dataclasses.dataclass(frozen=True)
class Prompt:
  ids: list[int]  # the chat-templated conversation before its last answer, generation prompt on
  text: str       # the last user message: what a reward function reads as the prompt


def encode_prompts(tokenizer, examples, config, source: str) -> list[Prompt]:
  """Each conversation without its last answer, chat-templated with the generation prompt;
  one longer than cutoff_len - max_new_tokens keeps its end (where the generation prompt is),
  so prompt and answer fit in cutoff_len."""
  keep = config.cutoff_len - config.max_new_tokens
  if keep < 1:
    raise ValueError(f"config fields cutoff_len={config.cutoff_len} and max_new_tokens="
                     f"{config.max_new_tokens}: the prompt needs room within cutoff_len.")
  prompts = []
  for example in examples:
    history = example.messages[:-1]
    text = tokenizer.apply_chat_template(history, add_generation_prompt=True)
    users = [m["content"] for m in history if m["role"] == "user"]
    prompts.append(Prompt(tokenizer.encode(text)[-keep:], users[-1] if users else ""))
  if not prompts:
    raise sft_data.DataError(f"{source}: no prompts to roll out.")
  return prompts


@dataclasses.dataclass(frozen=True)
class Sampling:
  """The sampler knobs of a rollout (LLaMA-Factory's generation settings)."""
  max_new_tokens: int
  temperature: float = 1.0     # 0: greedy
  top_k: int | None = None
  top_p: float | None = None
  eos_id: int | None = None
  pad_id: int = 0

  @classmethod
  def from_config(cls, config, tokenizer) -> "Sampling":
    return cls(config.max_new_tokens, config.temperature if config.do_sample else 0.0,
               config.top_k or None, config.top_p, tokenizer.eos_id,
               tokenizer.pad_id if tokenizer.pad_id is not None else 0)


def adapters_off(model):
  """The model with every LoRA parameter (so B, hence every update) at zero: DPO's reference,
  sharing every other weight with the policy."""
  graphdef, adapters, rest = nnx.split(model, lora.LoRAParam, ...)
  return nnx.merge(graphdef, jax.tree.map(jnp.zeros_like, adapters), rest)


def reference_model(config, model):
  """The reference of a run: `ref_model` when set; else None (the policy with its adapters
  off, taken at each rollout) under LoRA, or a copy of the starting weights under full."""
  if config.ref_model:
    return pretrained.load_model(config.ref_model, quantized=False).model
  if config.finetuning_type == "lora":
    return None
  return nnx.clone(model)


def sample(model, prompts: list[list[int]], sampling: Sampling, key) -> list[list[int]]:
  """Each prompt's answer ids (EOS included), all rows in one jitted batch: the prompts are
  left-padded to a length bucket (sft.bucket) so the decoder compiles for few shapes."""
  width = sft.bucket(max(map(len, prompts)))
  prompt_BxP = np.full((len(prompts), width), sampling.pad_id, np.int32)
  for i, ids in enumerate(prompts):
    prompt_BxP[i, width - len(ids):] = ids
  tokens_BxT, lengths_B = decode.generate(
      model, prompt_BxP, sampling.max_new_tokens, key, temperature=sampling.temperature,
      top_k=sampling.top_k, top_p=sampling.top_p, eos_id=sampling.eos_id,
      pad_id=sampling.pad_id, prompt_lengths=[len(ids) for ids in prompts])
  tokens_BxT, lengths_B = np.asarray(tokens_BxT), np.asarray(lengths_B)
  return [tokens_BxT[i, width:width + n].tolist() for i, n in enumerate(lengths_B)]


def rollout_arrays(prompts: list[list[int]], answers: list[list[int]], pad_id: int,
                   length: int | None = None) -> dict:
  """tokens, inputs, targets, mask and the lengths of prompt + answer rows, padded to
  `length` + 1 tokens (default: the longest row's sft.bucket)."""
  totals = [len(p) + len(a) for p, a in zip(prompts, answers)]
  length = length or sft.bucket(max(totals) - 1)
  if max(totals) > length + 1:
    raise ValueError(f"rollout: a row of {max(totals)} tokens does not fit length {length}.")
  rows = [(p + a, [sft_data.IGNORE] * len(p) + a) for p, a in zip(prompts, answers)]
  inputs, targets, mask = sft_data.pad_batch(rows, pad_id, length)
  tokens = np.full((len(rows), length + 1), pad_id, np.int32)
  for i, (ids, _) in enumerate(rows):
    tokens[i, :len(ids)] = ids
  return {"tokens": tokens, "inputs": inputs, "targets": targets, "mask": mask,
          "lengths": np.asarray(totals, np.int32),
          "prompt_lengths": np.asarray([len(p) for p in prompts], np.int32),
          "answer_lengths": np.asarray([len(a) for a in answers], np.int32)}


@nnx.jit
def token_logps(model, inputs_BxL, targets_BxL):
  """log p(target_t | inputs <= t) under `model`, B x L, in one forward pass."""
  logits_BxLxV, _ = model(inputs_BxL)
  return losses.token_logps(logits_BxLxV, targets_BxL)


def in_chunks(fn, chunk: int, *arrays) -> np.ndarray:
  """fn over `chunk` rows of the arrays at a time (one compiled shape), concatenated."""
  out = [fn(*(a[i:i + chunk] for a in arrays)) for i in range(0, len(arrays[0]), chunk)]
  return np.concatenate(jax.device_get(out))


def masked_logps(model, arrays: dict, chunk: int) -> np.ndarray:
  """token_logps over the rows `chunk` at a time, 0 off the mask."""
  return in_chunks(lambda x, y: token_logps(model, x, y), chunk, arrays["inputs"],
                   arrays["targets"]) * arrays["mask"]


def rollout(model, prompts: list[list[int]], sampling: Sampling, key, *, reference=None,
            length: int | None = None, chunk: int | None = None, tokenizer=None) -> dict:
  """Answers sampled by `model` for `prompts` and their log-probs under the model and the
  reference (`reference` None: `model` with its adapters off); see the module docstring.
  `chunk`: rows per log-prob forward pass (default all); `tokenizer` decodes "answers"."""
  tick = time.perf_counter()
  answers = sample(model, prompts, sampling, key)
  seconds = time.perf_counter() - tick
  out = rollout_arrays(prompts, answers, sampling.pad_id, length)
  chunk = chunk or len(prompts)
  out["old_logps"] = masked_logps(model, out, chunk)
  out["ref_logps"] = masked_logps(adapters_off(model) if reference is None else reference, out,
                                  chunk)
  generated = int(out["answer_lengths"].sum())
  out["seconds"], out["tokens_per_s"] = seconds, generated / max(seconds, 1e-9)
  if tokenizer is not None:
    out["answers"] = [tokenizer.decode([t for t in a if t != sampling.eos_id]) for a in answers]
  return out


class RolloutSource:
  """The loop's on-policy source (research/train/loop.py): every round of
  steps_per_round = ppo_epochs * ppo_buffer_size optimizer steps (= ppo_epochs * rows / (B A)),
  the current policy rolls out again; step_batch serves the round's rows as A x B micro-batches,
  a fresh seeded permutation of them in each of the ppo_epochs passes.

  A round holds rows_per_round = B * A * ppo_buffer_size rows: rows_per_round / repeats
  prompts (in a seeded order over the dataset, epoch after epoch), each answered `repeats`
  times in adjacent rows (GRPO's group; PPO: 1). Rows are one length for the whole run, so the
  train step compiles once.

  Subclasses add to a round through `finish` (rewards, advantages, values...). A run resumed
  mid-round rolls that round out again with the restored model: its rows differ from those the
  interrupted run trained on (sampling is seeded by round, the model is a few steps further).
  """

  def __init__(self, prompts: list[Prompt], config, tokenizer, reference=None, repeats: int = 1):
    self.prompts, self.config, self.tokenizer = prompts, config, tokenizer
    self.reference, self.repeats = reference, repeats
    self.sampling = Sampling.from_config(config, tokenizer)
    self.batch, self.accum = config.per_device_train_batch_size, config.gradient_accumulation_steps
    self.rows_per_round = self.batch * self.accum * config.ppo_buffer_size
    if self.rows_per_round % repeats:
      raise ValueError(
          f"config fields per_device_train_batch_size * gradient_accumulation_steps * "
          f"ppo_buffer_size = {self.rows_per_round} rows per round: expected a multiple of "
          f"num_generations={repeats} (the answers of one prompt share a round).")
    self.prompts_per_round = self.rows_per_round // repeats
    self.steps_per_round = config.ppo_epochs * config.ppo_buffer_size
    self.order = sft.StepBatches(prompts, self.prompts_per_round, 1, 0, config.seed)
    self.steps_per_epoch = self.order.steps_per_epoch * self.steps_per_round
    self.length = sft.bucket(max(len(p.ids) for p in prompts) + config.max_new_tokens - 1)
    self.round, self.arrays, self.round_metrics = None, None, {}

  def round_prompts(self, round_: int) -> list[Prompt]:
    """The round's prompts, each `repeats` times in a row."""
    return [self.prompts[i] for i in self.order.indices(round_) for _ in range(self.repeats)]

  def collect(self, step: int, current_model) -> None:
    round_ = step // self.steps_per_round
    if round_ == self.round:
      return
    model = current_model()
    prompts = self.round_prompts(round_)
    out = rollout(self.policy_lm(model), [p.ids for p in prompts], self.sampling,
                  jax.random.fold_in(jax.random.key(self.config.seed), round_),
                  reference=self.reference, length=self.length, chunk=self.batch,
                  tokenizer=self.tokenizer)
    metrics = {"response_length": float(np.mean(out["answer_lengths"])),
               "rollout_tokens_per_s": out["tokens_per_s"]}
    arrays, extra = self.finish(out, prompts, model)
    del model  # the step donates the current model's arrays
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    self.round_metrics = {**metrics, **extra}
    self.round = round_

  def policy_lm(self, model):
    """The language model that samples (PPO: the LM under the value head)."""
    return model

  def finish(self, out: dict, prompts: list[Prompt], model) -> tuple[dict, dict]:
    """(the round's arrays, B-leading; its metrics) from a rollout: here its arrays as they
    are; subclasses add rewards and advantages."""
    del prompts, model
    return {k: v for k, v in out.items() if isinstance(v, np.ndarray)}, {}

  def step_batch(self, step: int) -> dict:
    """Micro-batches k of pass e over this round: a permutation seeded by (seed, round, e)."""
    epoch, k = divmod(step % self.steps_per_round, self.config.ppo_buffer_size)
    order = np.random.default_rng([self.config.seed, step // self.steps_per_round,
                                   epoch]).permutation(self.rows_per_round)
    per_step = self.batch * self.accum
    picked = order[k * per_step:(k + 1) * per_step]
    shape = (self.accum, self.batch)
    return {name: v[picked].reshape(shape + v.shape[1:]) for name, v in self.arrays.items()}

  def metrics(self, step: int) -> dict:
    del step
    return dict(self.round_metrics)

