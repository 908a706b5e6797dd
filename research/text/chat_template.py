"""Chat templates: the Jinja programs that checkpoints ship, rendered the way
transformers' `apply_chat_template` renders them (sandboxed, trimmed blocks, `tojson`)."""

import datetime
import functools
import json

import jinja2
from jinja2 import sandbox


class TemplateError(ValueError):
  """A template called raise_exception(...) or failed to render."""


def _raise(message):
  raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
  return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                    sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
  env = sandbox.ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
  env.filters["tojson"] = _tojson
  env.globals["raise_exception"] = _raise
  env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
  return env.from_string(template)


def render(template: str, messages: list[dict], *, add_generation_prompt: bool = False,
           bos_token: str = "", eos_token: str = "", **extra) -> str:
  """The prompt text for `messages` ([{"role": ..., "content": ...}, ...])."""
  for i, message in enumerate(messages):
    if not isinstance(message, dict) or "role" not in message:
      raise TemplateError(f"messages[{i}]: expected a dict with a 'role' and a 'content'.")
  try:
    return _compile(template).render(messages=messages,
                                     add_generation_prompt=add_generation_prompt,
                                     bos_token=bos_token, eos_token=eos_token, **extra)
  except jinja2.TemplateError as e:
    raise TemplateError(f"chat template failed: {e}") from e
