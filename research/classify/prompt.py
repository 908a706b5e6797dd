"""The notebook's prompt: a system instruction naming the classes and the strict answer format,
one demonstration per class as a user/assistant turn, then the text to classify."""

INSTRUCTION = ("Classify the text into exactly one of these classes: {classes}. "
               "Answer with the class name only, exactly as written above, and nothing else.")


def messages(class_examples: dict[str, str], text: str,
             instruction: str = INSTRUCTION) -> list[dict]:
  """Chat messages for `text`; `class_examples` maps each class to its demonstration and its
  order is the order of the demonstrations."""
  turns = [{"role": "system", "content": instruction.format(classes=", ".join(class_examples))}]
  for label, example in class_examples.items():
    turns += [{"role": "user", "content": example}, {"role": "assistant", "content": label}]
  return turns + [{"role": "user", "content": text}]


def normalise(answer: str) -> str:
  """Case, surrounding whitespace, quotes and final punctuation do not count."""
  return answer.strip().strip("\"'`*").rstrip(".!").strip().lower()


def match(answer: str, classes) -> str | None:
  """The class whose name the answer is; else the one class whose name it begins, as a greedy
  answer cut short by its token budget does ("分析" of "分析师报告"); else None (no class, or
  the start of two)."""
  by_name = {normalise(c): c for c in classes}
  said = normalise(answer)
  if said in by_name:
    return by_name[said]
  begun = [c for name, c in by_name.items() if said and name.startswith(said)]
  return begun[0] if len(begun) == 1 else None
