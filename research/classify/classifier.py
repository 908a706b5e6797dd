"""In-context classification with a pretrained chat model.

  clf = ICLClassifier(research.load_model(), {"Sports": "The striker scored twice.", ...})
  clf.predict(["The central bank raised rates."])     # ["Finance"]
  clf.predict_proba(texts)                            # N x C, rows sum to 1

mode="score" (default) scores every class name as the answer, log p(name | prompt) summed over
its tokens, and takes the best; mode="generate" decodes greedily and matches the answer to a
class name, or to the one name it begins when max_new_tokens cut it short (an answer that is
none of them is wrong: `predict` returns it as it is, and its probability row is uniform).
"""

import numpy as np

from research import runs
from research.classify import prompt as prompt_lib
from research.classify import scoring
from research.text import detokenize

CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. 2021, "Calibrate before use"
PLACEHOLDER = "\x00text\x00"


class ICLClassifier:
  def __init__(self, model, class_examples: dict[str, str], mode: str = "score", *,
               calibrate: bool = False, normalize_length: bool = False,
               content_free=CONTENT_FREE, instruction: str = prompt_lib.INSTRUCTION,
               max_new_tokens: int = 8, chunk: int = 16, show_progress: bool = False):
    if mode not in ("score", "generate"):
      raise ValueError(f"ICLClassifier: mode={mode!r}; expected 'score' or 'generate'.")
    if len(class_examples) < 2:
      raise ValueError("ICLClassifier: class_examples needs at least two classes.")
    self.lm, self.tokenizer = model, model.tokenizer
    self.class_examples = dict(class_examples)
    self.classes = list(self.class_examples)
    self.mode, self.calibrate, self.normalize_length = mode, calibrate, normalize_length
    self.content_free, self.instruction = tuple(content_free), instruction
    self.max_new_tokens, self.show_progress = max_new_tokens, show_progress
    tok = self.tokenizer
    self.label_ids = [tok.encode(c) for c in self.classes]
    if any(not ids for ids in self.label_ids):
      raise ValueError("ICLClassifier: a class name encodes to no tokens.")
    self.stop_ids = tuple(i for i in (tok.eos_id,) if i is not None)
    # The part of the prompt every text shares; it runs once into the cache.
    head = self.render(PLACEHOLDER).split(PLACEHOLDER)[0]
    self.head_ids = tok.encode(head)
    self._chunk, self._cached = chunk, None
    self._content_free_logp = None

  def messages(self, text: str) -> list[dict]:
    return prompt_lib.messages(self.class_examples, text, self.instruction)

  def render(self, text: str) -> str:
    return self.tokenizer.apply_chat_template(self.messages(text), add_generation_prompt=True)

  # The shared prompt head in a cache big enough for every text so far.

  def _prepare(self, longest: int):
    """`longest`: the longest whole prompt; the answer and a padded chunk must fit after it."""
    answer = max(max(map(len, self.label_ids)), self.max_new_tokens)
    slots = max(512, scoring.round_up(longest + answer + 2 * self._chunk, 256))
    if self._cached is None or self._cached[0].slots < slots:
      lm = scoring.CachedLM(self.lm.model, self._chunk, slots, self.tokenizer.pad_id or 0)
      cache, logp = lm.run(lm.empty(), self.head_ids) if self.head_ids else (lm.empty(), None)
      self._cached = (lm, cache, logp)
    return self._cached

  def _check_context(self, prompts) -> None:
    """A learned position table has no row past max_length (rotary positions go on): a prompt
    and its answer beyond it stop with the counts, not with clamped positions."""
    if self.lm.config.position not in ("learned", "sinusoidal"):
      return
    limit = self.lm.config.max_length
    answer = max(max(map(len, self.label_ids)), self.max_new_tokens)
    for i, ids in enumerate(prompts):
      if len(ids) + answer > limit:
        raise ValueError(f"ICLClassifier: text {i}: its prompt of {len(ids)} tokens and an "
                         f"answer of up to {answer} exceed the model's context of {limit} "
                         "tokens; shorten the text or the demonstrations.")

  def _prompts(self, texts) -> list[list[int]]:
    return [self.tokenizer.encode(self.render(t)) for t in texts]

  def _continue(self, ids):
    """(cache, next-token log-probs) after a whole prompt, reusing the head when it matches."""
    lm, head_cache, _ = self._cached
    n = len(self.head_ids)
    if n and ids[:n] == self.head_ids and len(ids) > n:
      return lm.run(head_cache, ids[n:])
    return lm.run(lm.empty(), ids)  # the tokenizer merged across the boundary: start afresh

  def _bar(self, items, desc):
    return runs.progress(items, desc=desc, unit="text", disable=not self.show_progress,
                         leave=False)

  # Decoders.

  def decode(self, texts, score: bool = True, generate: bool = True):
    """One pass over the texts, each prompt run once for both decoders: (N x C summed
    log p(class name | prompt) or None, greedy answers or None)."""
    prompts = self._prompts(texts)
    self._check_context(prompts)
    lm = self._prepare(max(map(len, prompts), default=0))[0]
    logps, answers = [], []
    desc = "label scoring" if not generate else ("generating" if not score else "decoding")
    for ids in self._bar(prompts, desc):
      cache, logp_TxV = self._continue(ids)
      if score:
        logps.append(lm.label_logprobs(cache, logp_TxV[-1], self.label_ids))
      if generate:
        out = lm.greedy(cache, logp_TxV[-1], self.max_new_tokens, self.stop_ids)
        answers.append(detokenize.text(self.tokenizer, out).strip())  # no half character
    logp_NxC = (np.stack(logps) if logps else np.zeros((0, len(self.classes)))) if score else None
    return logp_NxC, answers if generate else None

  def label_logprobs(self, texts) -> np.ndarray:
    """N x C: log p(class name | prompt of text), summed over the name's tokens."""
    return self.decode(texts, score=True, generate=False)[0]

  def content_free_logprobs(self) -> np.ndarray:
    if self._content_free_logp is None:
      self._content_free_logp = self.label_logprobs(list(self.content_free))
    return self._content_free_logp

  def scores(self, texts, logp_NxC=None) -> np.ndarray:
    """Final log-scores N x C (length-normalised and calibrated as configured)."""
    logp_NxC = self.label_logprobs(texts) if logp_NxC is None else logp_NxC
    cf = self.content_free_logprobs() if self.calibrate else None
    return scoring.combine(logp_NxC, [len(i) for i in self.label_ids], self.normalize_length, cf)

  def generate(self, texts) -> list[str]:
    """The greedy answers, decoded."""
    return self.decode(texts, score=False, generate=True)[1]

  # The scikit-learn-like surface.

  def predict_proba(self, texts) -> np.ndarray:
    texts = list(texts)
    if self.mode == "score":
      return scoring.softmax(self.scores(texts))
    return self._one_hot(self.generate(texts))

  def predict(self, texts) -> list[str]:
    texts = list(texts)
    if self.mode == "score":
      return [self.classes[i] for i in np.argmax(self.scores(texts), axis=1)]
    return [prompt_lib.match(a, self.classes) or a for a in self.generate(texts)]

  def _one_hot(self, answers) -> np.ndarray:
    c = len(self.classes)
    proba = np.full((len(answers), c), 1.0 / c)
    for row, answer in zip(proba, answers):
      label = prompt_lib.match(answer, self.classes)
      if label is not None:
        row[:] = 0.0
        row[self.classes.index(label)] = 1.0
    return proba
