"""Benchmarks of the fine-tuning chapter, each figure a median and each comparison side by side.

  python -m experiments.bench_finetune --what=decode   # greedy KV-cache decode vs transformers
  python -m experiments.bench_finetune --what=matvecs  # a decode step's quantized matvecs alone
  python -m experiments.bench_finetune --what=sft      # LoRA and full SFT vs transformers + peft
  python -m experiments.bench_finetune --what=sft_profile --mode=lora --remat=false
  python -m experiments.bench_finetune --what=precision   # LoRA SFT: fp32, bf16 emulated, bf16

decode: SmolLM2-135M-Instruct, one prompt, greedy, `--new_tokens`, prefill included; ours is
decode.generate (one jitted while_loop) with the GGUF's blocks kept quantized (the default) and
dequantized to float32, theirs is transformers' generate on the same GGUF (torch, `--threads`
threads); runs alternate, compile and first call excluded. With `--llama_cpp_python` (a Python
that has llama-cpp-python, installed for the benchmark only) llama.cpp runs the same file and
prompt tokens in a child process, `--repeats` times after ours. Each side's time splits into
the first token (prefill) and the milliseconds per token after it.
matvecs: every quantized matrix of SmolLM2 times one row of x, in one jitted program, in a
decode step's order: the kernel's share of a step, and the bytes it reads per second.
sft: LoRA (r=8 on every linear of the blocks) and full fine-tuning, each with gradient
checkpointing on (LLaMA-Factory's default) and off, ours against transformers + peft on the
same GGUF in float32 (AdamW, gradient clipping at 1.0, `--threads` torch threads). Every run
is its own child process (peak RSS is per process, loading included), same batch of random
tokens, sequence length and steps; tokens/s is all timed tokens over all timed seconds, the
first step (ours: its compile) reported apart.
sft_profile: where one SFT step's time goes: the step (gradient, clipping, AdamW) traced once by
jax.profiler after two warm runs, each XLA:CPU operation's time summed by kind (a matmul by
its shapes, forward or backward; other fusions by the costly operations inside them).
precision: LoRA SFT children in fp32, in bf16 forced onto the CPU's emulated bf16 matmuls
(BOOKFORAI_CPU_BF16=1: the path before issue 15) and in bf16 as it runs by default now.
"""

import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import flags

from experiments import script

_WHAT = flags.DEFINE_enum("what", "decode", ["decode", "matvecs", "sft", "sft_child",
                                             "sft_torch_child", "sft_profile", "precision"],
                          "Which benchmark.")
_NEW = flags.DEFINE_integer("new_tokens", 64, "Tokens to generate per decode run.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs of each side.")
_THREADS = flags.DEFINE_integer("threads", 2, "torch threads (this machine has 2 cores).")
_MODE = flags.DEFINE_string("mode", "lora", "sft_child, sft_torch_child: lora or full.")
_REMAT = flags.DEFINE_boolean("remat", True, "sft children: recompute the blocks in the backward "
                              "pass (gradient checkpointing, LLaMA-Factory's default).")
_STEPS = flags.DEFINE_integer("steps", 6, "SFT steps per mode (the first one compiles).")
_BATCH = flags.DEFINE_integer("batch", 4, "SFT batch size.")
_LENGTH = flags.DEFINE_integer("length", 128, "SFT sequence length.")
_LLAMA_CPP = flags.DEFINE_string("llama_cpp_python", None,
                                 "decode: a python with llama-cpp-python, for the llama.cpp side.")
_COMPUTE = flags.DEFINE_enum("compute_type", "fp32", ["fp32", "bf16", "fp16"],
                             "sft_child: the config's compute_type.")

PROMPT = "Explain in a few sentences why gradient descent needs a learning rate."


def bench_decode():
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.generate import decode  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(_THREADS.value)
  lm = pretrained.load_model()
  plain = pretrained.load_model(quantized=False)
  tok = lm.tokenizer
  ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": PROMPT}]))
  path = pretrained.packaged_path("smollm2-135m-instruct")
  theirs = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
  new = _NEW.value

  def ours_once(model=lm.model, tokens=new):
    out, _ = decode.generate(model, jnp.asarray([ids]), tokens, jax.random.key(0),
                             temperature=0.0)  # no EOS: exactly `tokens` tokens, like theirs
    return out.block_until_ready()

  def float32_once():
    return ours_once(plain.model)

  def first_token_once():
    return ours_once(tokens=1)

  def theirs_once():
    with torch.no_grad():
      return theirs.generate(torch.as_tensor([ids]), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, use_cache=True, pad_token_id=tok.eos_id)

  ours_once(), float32_once(), theirs_once(), first_token_once()  # compile / warm up
  times = {"ours": [], "ours_float32": [], "transformers": [], "first": []}
  for _ in range(_REPEATS.value):
    for name, fn in (("ours", ours_once), ("ours_float32", float32_once),
                     ("transformers", theirs_once), ("first", first_token_once)):
      tick = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - tick)
  first = statistics.median(times.pop("first"))
  rates = {k: new / statistics.median(v) for k, v in times.items()}
  tokens = ours_once()[0, len(ids):].tolist()
  result = {"prompt_tokens": len(ids), "new_tokens": new,
            **{f"{k}_tokens_per_s": round(v, 1) for k, v in rates.items()},
            "ours_first_token_ms": round(1e3 * first, 1),
            "ours_ms_per_token_after": round(1e3 * (new / rates["ours"] - first) / (new - 1), 2),
            "ratio_to_transformers": round(rates["ours"] / rates["transformers"], 2),
            "same_greedy_tokens_as_float32": tokens == float32_once()[0, len(ids):].tolist(),
            "same_greedy_tokens_as_transformers":
                tokens == theirs_once()[0, len(ids):].tolist()}
  if _LLAMA_CPP.value:
    out = subprocess.run([_LLAMA_CPP.value, "-c", LLAMA_CPP_CHILD, str(path), str(_THREADS.value),
                          json.dumps(ids), str(new), str(_REPEATS.value)],
                         capture_output=True, text=True, check=True).stdout
    llama = json.loads(out.strip().splitlines()[-1])
    result["llama_cpp_tokens_per_s"] = round(new / statistics.median(llama["seconds"]), 1)
    result["ratio_to_llama_cpp"] = round(rates["ours"] / result["llama_cpp_tokens_per_s"], 2)
    llama_first = statistics.median(llama["first"])
    result["llama_cpp_first_token_ms"] = round(1e3 * llama_first, 1)
    result["llama_cpp_ms_per_token_after"] = round(
        1e3 * (statistics.median(llama["seconds"]) - llama_first) / (new - 1), 2)
    result["same_greedy_tokens_as_llama_cpp"] = tokens == llama["tokens"]
  print(json.dumps(result))


# llama.cpp's side of the decode benchmark, run by the Python given in --llama_cpp_python:
# the same GGUF and prompt tokens, greedy, prefill included (the cache is reset each run).
LLAMA_CPP_CHILD = """
import json, sys, time
from llama_cpp import Llama
path, threads, ids, new, repeats = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_threads=threads, n_ctx=len(ids) + new + 8, verbose=False)
def once():
  llm.reset()
  out, stamps = [], [time.perf_counter()]
  for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
    out.append(token)
    stamps.append(time.perf_counter())
    if len(out) == new:
      return out, stamps
once()
seconds, first = [], []
for _ in range(repeats):
  tokens, stamps = once()
  seconds.append(stamps[-1] - stamps[0])
  first.append(stamps[1] - stamps[0])
print(json.dumps({"seconds": seconds, "first": first, "tokens": tokens}))
"""


def bench_matvecs():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.nn import quantized  # pylint: disable=g-import-not-at-top
  layers = [m for _, m in nnx.iter_graph(pretrained.load_model().model)
            if isinstance(m, quantized.QuantizedLinear)]
  weights = [(m.kind, m.q[...], m.d[...], None if m.m is None else m.m[...]) for m in layers]
  read = sum(int(a.nbytes) for w in weights for a in w[1:] if a is not None)

  @jax.jit
  def step(arrays):
    total = jnp.zeros(())
    for (kind, *_), (q, d, m) in zip(weights, arrays):  # each waits on the last, as in a step
      x_1xK = jnp.full((1, d.shape[1] * quantized.BLOCK), 1.0) + total * 1e-30
      total = total + quantized.matmul(x_1xK, kind, q, d, m)[0, 0]
    return total

  arrays = [w[1:] for w in weights]
  step(arrays).block_until_ready()
  seconds = []
  for _ in range(10 * _REPEATS.value):
    tick = time.perf_counter()
    step(arrays).block_until_ready()
    seconds.append(time.perf_counter() - tick)
  median = statistics.median(seconds)
  print(json.dumps({"matvecs": len(weights), "mb_read": round(read / 1e6, 1),
                    "ms_per_step": round(1e3 * median, 2),
                    "gb_per_s": round(read / median / 1e9, 1),
                    "cores": len(os.sched_getaffinity(0))}))


def sft_child():
  """One mode's SFT steps on random token rows; prints tokens/s and this process's peak RSS."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.finetune import config as config_lib  # pylint: disable=g-import-not-at-top
  from research.finetune import sft  # pylint: disable=g-import-not-at-top
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  config = config_lib.defaults()
  config.finetuning_type = _MODE.value
  config.compute_type = _COMPUTE.value
  config.max_steps, config.logging_steps, config.save_steps = _STEPS.value, 1, 10**6
  config.per_device_train_batch_size, config.gradient_accumulation_steps = _BATCH.value, 1
  config.learning_rate = 1e-5
  lm = pretrained.load_model(quantized=False)  # trained: float32 weights
  if _MODE.value == "lora":
    lora.apply_lora(lm.model, rank=8)
  rng = np.random.default_rng(0)
  rows = [(rng.integers(3, 49152, _LENGTH.value + 1).tolist(),) * 2 for _ in range(64)]
  batches = sft.StepBatches(rows, _BATCH.value, 1, 0, 0)
  objective = functools.partial(sft.sft_objective, remat=_REMAT.value)
  with tempfile.TemporaryDirectory() as workdir:
    config.output_dir = workdir
    result = trainer.train(lm.model, config, batches, None, objective, show_progress=False)
  del jnp
  print(json.dumps({**_sft_figures(result.first_step_s,
                                   [r["seconds"] for r in result.history[1:]]),
                    "compute_type": _COMPUTE.value, "dtype": trainer.compute_dtype(config)[0],
                    "steps_per_s": round(1000 / result.ms_per_iter, 3)}))


def sft_torch_child():
  """transformers + peft's side of bench_sft: the same model, rows, batch and optimizer."""
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import peft  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from research import pretrained  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(_THREADS.value)
  torch.manual_seed(0)
  path = pretrained.packaged_path("smollm2-135m-instruct")
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32)
  if _REMAT.value:  # as LLaMA-Factory turns it on (use_reentrant_gc defaults to True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.enable_input_require_grads()
  model.config.use_cache = False
  if _MODE.value == "lora":
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                       target_modules="all-linear"))
  model.train()
  trainable = [p for p in model.parameters() if p.requires_grad]
  optimizer = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0)
  rng = np.random.default_rng(0)
  rows = torch.as_tensor(rng.integers(3, 49152, (64, _LENGTH.value + 1)))
  seconds = []
  for step in range(_STEPS.value):
    tick = time.perf_counter()
    batch = rows[(step * _BATCH.value) % 64:][:_BATCH.value]
    loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds.append(time.perf_counter() - tick)
  print(json.dumps(_sft_figures(seconds[0], seconds[1:])))


def sft_profile():
  import collections  # pylint: disable=g-import-not-at-top
  import gzip  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.finetune import config as config_lib  # pylint: disable=g-import-not-at-top
  from research.finetune import sft  # pylint: disable=g-import-not-at-top
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  config = config_lib.defaults()
  config.finetuning_type, config.learning_rate = _MODE.value, 1e-5
  model = pretrained.load_model(quantized=False).model
  if _MODE.value == "lora":
    lora.apply_lora(model, rank=8)
  graphdef, params, rest = nnx.split(model, trainer.trainable_filter(config), ...)
  tx = trainer.make_optimizer(config, 100)
  rows = np.random.default_rng(0).integers(3, 49152, (_BATCH.value, _LENGTH.value + 1))
  batch = {"inputs": jnp.asarray(rows[:, :-1]), "targets": jnp.asarray(rows[:, 1:]),
           "weights": jnp.ones((_BATCH.value, _LENGTH.value), jnp.float32)}

  def loss(params):
    return sft.sft_objective(nnx.merge(graphdef, params, rest), batch, remat=_REMAT.value)[0]

  @functools.partial(jax.jit, donate_argnums=(0, 1))  # donated, as the trainer's step
  def step(params, opt_state):  # gradient, clipping, AdamW
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  state = (params, tx.init(params))
  for _ in range(2):
    state = jax.block_until_ready(step(*state))
  hlo = step.lower(*jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                 state)).compile().as_text()
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder, create_perfetto_trace=True):
      tick = time.perf_counter()
      state = jax.block_until_ready(step(*state))
      seconds = time.perf_counter() - tick
    trace = json.load(gzip.open(next(Path(folder).rglob("perfetto_trace.json.gz"))))
  micros = collections.Counter()
  for event in trace["traceEvents"]:
    if event.get("ph") == "X":
      micros[event["name"]] += event.get("dur", 0)
  bodies = {c.split(" ", 1)[0]: c for c in re.split(r"\n(?=%|ENTRY)", hlo)}
  kinds, calls = collections.Counter(), collections.Counter()
  for m in re.finditer(r"\n\s+(?:ROOT )?%([\w.\-]+) = (\S+) (fusion|dot)\((.*)", hlo):
    name, shape, op, rest_of_line = m.groups()
    if name not in micros:
      continue
    phase = "backward" if "transpose(" in rest_of_line else "forward"
    if op == "dot":  # a matmul outside any fusion: its operands are named, not shaped
      kind = f"matmul {phase} -> {shape.split('{')[0]}"
      kinds[kind] += micros[name]
      calls[kind] += 1
      continue
    body = bodies.get(re.search(r"calls=(%[\w.\-]+)", rest_of_line).group(1), "")
    if " dot(" in body:
      inputs = re.findall(r"= (\S+) parameter\(", body)
      kind = f"matmul {phase} {' x '.join(i.split('{')[0] for i in inputs)} -> {shape.split('{')[0]}"
    else:
      costly = sorted(set(re.findall(r"= \S+ (exponential|cosine|sine|divide|sqrt|rsqrt|"
                                     r"reduce|transpose|copy|select|gather|scatter)\(", body)))
      kind = f"other {phase} {'+'.join(costly) or 'elementwise'}"
    kinds[kind] += micros[name]
    calls[kind] += 1
  total = sum(kinds.values())
  matmuls = sum(v for k, v in kinds.items() if k.startswith("matmul"))
  # two operations may run at once on two cores, so their sum can exceed the step
  print(f"{_MODE.value}, remat={_REMAT.value}: step {seconds:.2f} s; XLA operations "
        f"{total / 1e6:.2f} s summed, matmuls {matmuls / 1e6:.2f} s of it")
  for kind, us in kinds.most_common(25):
    print(f"{us / 1e3:8.1f} ms {calls[kind]:4d} x  {kind}")


def _sft_figures(first_step_s, timed_seconds):
  tokens = _BATCH.value * _LENGTH.value
  return {"mode": _MODE.value, "remat": _REMAT.value, "first_step_s": round(first_step_s, 1),
          "tokens_per_s": round(tokens * len(timed_seconds) / sum(timed_seconds), 1),
          "median_step_s": round(statistics.median(timed_seconds), 2),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def bench_sft():
  """Ours and transformers + peft, alternating, for each mode and checkpointing setting."""
  results = []
  for mode in ("lora", "full"):
    for remat in (True, False):
      pair = {}
      for side in ("sft_child", "sft_torch_child"):
        proc = subprocess.run([sys.executable, "-m", "experiments.bench_finetune",
                               f"--what={side}", f"--mode={mode}", f"--remat={remat}",
                               f"--steps={_STEPS.value}", f"--batch={_BATCH.value}",
                               f"--length={_LENGTH.value}", f"--threads={_THREADS.value}"],
                              capture_output=True, text=True, check=True)
        pair["ours" if side == "sft_child" else "theirs"] = json.loads(
            proc.stdout.strip().splitlines()[-1])
      pair["ratio"] = round(pair["ours"]["tokens_per_s"] / pair["theirs"]["tokens_per_s"], 2)
      print(json.dumps(pair), flush=True)
      results.append(pair)


def bench_precision():
  results = {}
  for name, compute_type, force in (("fp32", "fp32", None), ("bf16_emulated", "bf16", "1"),
                                    ("bf16_default", "bf16", None)):
    env = dict(os.environ)
    env.pop("BOOKFORAI_CPU_BF16", None)
    if force:
      env["BOOKFORAI_CPU_BF16"] = force
    proc = subprocess.run([sys.executable, "-m", "experiments.bench_finetune", "--what=sft_child",
                           "--mode=lora", f"--compute_type={compute_type}",
                           f"--steps={_STEPS.value}", f"--batch={_BATCH.value}",
                           f"--length={_LENGTH.value}"], capture_output=True, text=True,
                          check=True, env=env)
    results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({name: results[name]}), flush=True)
  fp32 = results["fp32"]["steps_per_s"]
  print(json.dumps({f"steps_per_s_ratio_{k}_over_fp32": round(v["steps_per_s"] / fp32, 3)
                    for k, v in results.items() if k != "fp32"}))


def main(argv):
  del argv
  {"decode": bench_decode, "matvecs": bench_matvecs, "sft": bench_sft, "sft_child": sft_child,
   "sft_torch_child": sft_torch_child, "sft_profile": sft_profile,
   "precision": bench_precision}[_WHAT.value]()


if __name__ == "__main__":
  script.run(main)
