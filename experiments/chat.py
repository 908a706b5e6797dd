"""Chat with a model, streaming its tokens.

  python -m experiments.chat                                   # the packaged SmolLM2, a REPL
  python -m experiments.chat --prompt "Who are you?" --temperature 0
  python -m experiments.chat --model runs/persona/export --system "Be brief."

--model takes a packaged name, a .gguf file, an HF directory or an export directory.
--temperature 0 is greedy; top_k, top_p and min_p filter before sampling.
"""

import sys

import jax
from absl import flags

from experiments import script
from research import pretrained
from research.generate import stream

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "Model source.")
_PROMPT = flags.DEFINE_string("prompt", None, "Answer this one message and exit.")
_SYSTEM = flags.DEFINE_string("system", None, "A system message to start the conversation.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.7, "0 means greedy.")
_TOP_K = flags.DEFINE_integer("top_k", None, "Keep the k most likely tokens.")
_TOP_P = flags.DEFINE_float("top_p", None, "Keep the smallest set with probability >= p.")
_MIN_P = flags.DEFINE_float("min_p", None, "Drop tokens below min_p * p_max.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Longest answer in tokens.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def answer(lm, messages, key, out=sys.stdout) -> str:
  """Streams one assistant answer to `out` and returns it."""
  tok = lm.tokenizer
  prompt = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=True))
  tokens = stream.stream(lm.model, prompt, _MAX_NEW.value, key,
                         temperature=_TEMPERATURE.value, top_k=_TOP_K.value,
                         top_p=_TOP_P.value, min_p=_MIN_P.value, eos_id=tok.eos_id)
  pieces = []
  for piece in stream.stream_text(tok, tokens):
    out.write(piece)
    out.flush()
    pieces.append(piece)
  out.write("\n")
  return "".join(pieces).strip()


def main(argv):
  del argv
  lm = pretrained.load_model(_MODEL.value)
  messages = [{"role": "system", "content": _SYSTEM.value}] if _SYSTEM.value else []
  key = jax.random.key(_SEED.value)
  if _PROMPT.value is not None:
    answer(lm, messages + [{"role": "user", "content": _PROMPT.value}], key)
    return
  print(f"chatting with {lm.source} (empty line or Ctrl-D to quit)")
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
    reply = answer(lm, messages, jax.random.fold_in(key, turn))
    messages.append({"role": "assistant", "content": reply})
    turn += 1


if __name__ == "__main__":
  script.run(main)
