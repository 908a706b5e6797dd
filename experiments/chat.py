"""Chat with a model, streaming its tokens.

  python -m experiments.chat                                   # the packaged SmolLM2, a REPL
  python -m experiments.chat --prompt "Who are you?" --temperature 0
  python -m experiments.chat --model runs/persona/export --system "Be brief."
  python -m experiments.chat --model some/base --adapter saves/lora/sft   # a PEFT adapter
  python -m experiments.chat --yaml=examples/inference/llama3_lora_sft.yaml

--model takes a packaged name, a .gguf file, an HF directory or an export directory.
--yaml takes LLaMA-Factory's inference file: its model_name_or_path, adapter_name_or_path and
the sampling settings it gives (do_sample, temperature, top_p, top_k, max_new_tokens) replace
the flags; its other settings (template, infer_backend, ...) are named once as ignored.
--temperature 0 is greedy; top_k, top_p and min_p filter before sampling.
"""

import sys

import jax
from absl import flags

from experiments import script
from research import pretrained
from research.finetune import config as config_lib
from research.generate import stream

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "Model source.")
_ADAPTER = flags.DEFINE_string("adapter", None, "A PEFT LoRA adapter folder put on --model.")
_YAML = flags.DEFINE_string("yaml", None, "LLaMA-Factory's inference YAML instead of --model.")
_QUANTIZED = flags.DEFINE_bool("quantized", True, "Keep a GGUF's Q8_0 / Q4_1 weights in their "
                                "blocks (fast); false: dequantize them to float32.")
_PROMPT = flags.DEFINE_string("prompt", None, "Answer this one message and exit.")
_SYSTEM = flags.DEFINE_string("system", None, "A system message to start the conversation.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.7, "0 means greedy.")
_TOP_K = flags.DEFINE_integer("top_k", None, "Keep the k most likely tokens.")
_TOP_P = flags.DEFINE_float("top_p", None, "Keep the smallest set with probability >= p.")
_MIN_P = flags.DEFINE_float("min_p", None, "Drop tokens below min_p * p_max.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Longest answer in tokens.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def settings() -> dict:
  """The model, adapter and sampling: the flags, or what --yaml sets of them."""
  out = {"model": _MODEL.value, "adapter": _ADAPTER.value, "temperature": _TEMPERATURE.value,
         "top_k": _TOP_K.value, "top_p": _TOP_P.value, "min_p": _MIN_P.value,
         "max_new_tokens": _MAX_NEW.value}
  if _YAML.value:
    out.update(from_inference_yaml(_YAML.value))
  return out


def from_inference_yaml(path) -> dict:
  """The settings LLaMA-Factory's inference YAML gives (model and adapter always)."""
  config = config_lib.inference_from_yaml(path)
  given = config_lib.read_yaml(path)
  out = {"model": config.model, "adapter": config.adapter_name_or_path or None}
  if "temperature" in given:
    out["temperature"] = config.temperature
  if given.get("do_sample") is False:
    out["temperature"] = 0.0  # LLaMA-Factory's greedy
  if "top_k" in given:
    out["top_k"] = config.top_k or None  # its top_k 0 keeps every token
  if "top_p" in given:
    out["top_p"] = config.top_p
  if "max_new_tokens" in given:
    out["max_new_tokens"] = config.max_new_tokens
  return out


def answer(lm, messages, key, out=sys.stdout, sampling=None) -> str:
  """Streams one assistant answer to `out` and returns it."""
  sampling = sampling or settings()
  tok = lm.tokenizer
  prompt = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=True))
  tokens = stream.stream(lm.model, prompt, sampling["max_new_tokens"], key,
                         temperature=sampling["temperature"], top_k=sampling["top_k"],
                         top_p=sampling["top_p"], min_p=sampling["min_p"], eos_id=tok.eos_id)
  pieces = []
  for piece in stream.stream_text(tok, tokens):
    out.write(piece)
    out.flush()
    pieces.append(piece)
  out.write("\n")
  return "".join(pieces).strip()


def main(argv):
  del argv
  sampling = settings()
  lm = pretrained.load_model(sampling["model"], adapter=sampling["adapter"],
                             quantized=_QUANTIZED.value)
  messages = [{"role": "system", "content": _SYSTEM.value}] if _SYSTEM.value else []
  key = jax.random.key(_SEED.value)
  if _PROMPT.value is not None:
    answer(lm, messages + [{"role": "user", "content": _PROMPT.value}], key,
           sampling=sampling)
    return
  with_adapter = f" + {sampling['adapter']}" if sampling["adapter"] else ""
  print(f"chatting with {lm.source}{with_adapter} (empty line or Ctrl-D to quit)")
  turn = 0
  while True:
    try:
      text = input("you> ").strip()
    except EOFError:
      break
    if not text:
      break
    messages.append({"role": "user", "content": text})
    sys.stdout.write("bot> ")
    reply = answer(lm, messages, jax.random.fold_in(key, turn), sampling=sampling)
    messages.append({"role": "assistant", "content": reply})
    turn += 1


if __name__ == "__main__":
  script.run(main)
