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
           bos_token: str = "", eos_token: str = "", source: str | None = None, **extra) -> str:
  """The prompt text for `messages` ([{"role": ..., "content": ...}, ...]); `source` (the file
  the template came from) opens the sentence of a template that fails."""
  for i, message in enumerate(messages):
    if not isinstance(message, dict) or "role" not in message:
      raise TemplateError(f"messages[{i}]: expected a dict with a 'role' and a 'content'.")
  where = f"{source}: " if source else ""
  try:
    compiled = _compile(template)
  except jinja2.TemplateSyntaxError as e:
    raise TemplateError(f"{where}chat template failed: line {e.lineno}: not valid Jinja "
                        f"({e.message}).") from e
  try:
    return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                           bos_token=bos_token, eos_token=eos_token, **extra)
  except TemplateError as e:  # the template's own raise_exception(...)
    raise TemplateError(f"{where}the chat template refused the messages: {e}") from e
  except Exception as e:  # pylint: disable=broad-except  (a template is a program: any error)
    message = " ".join(str(e).split())
    raise TemplateError(f"{where}chat template failed: {type(e).__name__}: {message}") from e
