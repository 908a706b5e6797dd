"""Chat templates render as transformers renders them: trimmed blocks, tojson, loop controls,
a sandbox that cannot change its inputs, and errors that say what went wrong."""

import pytest

from research.text import chat_template

MESSAGES = [{"role": "user", "content": "和 3+3?"}, {"role": "assistant", "content": "6"}]


def test_blocks_are_trimmed_and_loops_can_break():
  template = ("{% for m in messages %}\n  {% if m['role'] == 'assistant' %}{% break %}{% endif %}\n"
              "<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}\n"
              "{% if add_generation_prompt %}<assistant>{% endif %}")
  assert chat_template.render(template, MESSAGES) == "<user>和 3+3?\n"
  assert chat_template.render(template, MESSAGES, add_generation_prompt=True) == (
      "<user>和 3+3?\n<assistant>")


def test_tojson_keeps_unicode_and_tokens_are_passed_in():
  template = "{{ bos_token }}{{ messages | tojson }}{{ eos_token }}{{ tools | tojson(indent=1) }}"
  text = chat_template.render(template, MESSAGES[:1], bos_token="<s>", eos_token="</s>",
                              tools=[1])
  assert text == '<s>[{"role": "user", "content": "和 3+3?"}]</s>[\n 1\n]'


def test_the_sandbox_keeps_the_messages_unchanged():
  messages = [dict(m) for m in MESSAGES]
  with pytest.raises(chat_template.TemplateError, match="chat template failed"):
    chat_template.render("{{ messages.append(1) }}", messages)
  assert messages == MESSAGES


def test_template_errors_are_one_sentence():
  with pytest.raises(chat_template.TemplateError, match="only user turns"):
    chat_template.render("{{ raise_exception('only user turns') }}", [{"role": "user"}])
  with pytest.raises(chat_template.TemplateError, match=r"messages\[0\]"):
    chat_template.render("x", ["not a message"])
  with pytest.raises(chat_template.TemplateError, match="chat template failed"):
    chat_template.render("{% if %}", MESSAGES)
