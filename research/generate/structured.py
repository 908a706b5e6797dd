"""Structured outputs: decoding that can only write text a grammar accepts (JSON, or JSON
that a schema describes), with llguidance's grammar engine computing the allowed tokens.

  grammar = structured.json_grammar({"type": "object", "properties": {...}})
  constraint = structured.Constraint(lm.tokenizer, lm.config.vocab_size, grammar)
  tokens = stream.stream(model, ids, 200, key, eos_id=eos, constraint=constraint)

Each step the matcher gives a bitmask of the tokens whose bytes keep the text a prefix of
some accepted answer; the sampler drops the others before temperature and top-k/p
(samplers.allowed_mask), the drawn token advances the matcher on the host, and EOS is
allowed only once the text is a whole answer. When nothing can follow but EOS the answer is
complete and the stream ends. An answer cut by its token budget is unfinished JSON, as with
OpenAI's finish_reason "length": the grammar bounds what may come, not how long it takes.

JSON is written compact (no whitespace between tokens): flexible whitespace lets a model
spend its whole budget on spaces and newlines, which is how unconstrained "JSON mode" often
fails. A schema's own "x-guidance" options may ask for other separators.
"""

import json
import threading

import llguidance
import numpy as np

ANY_OBJECT = {"type": "object"}
_COMPACT = {"whitespace_flexible": False}
_tokenizers: dict[int, tuple] = {}  # id(tokenizer) -> (tokenizer, vocab_size, LLTokenizer)
_lock = threading.Lock()


def json_grammar(schema: dict | None = None) -> str:
  """The llguidance grammar of JSON that validates against `schema` (None: any object);
  ValueError when it is not a JSON schema llguidance can compile."""
  if schema is not None and not isinstance(schema, dict):
    raise ValueError(f"expected a JSON schema object, got {type(schema).__name__}.")
  try:
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(ANY_OBJECT if schema is None else schema), defaults=_COMPACT)
  except (ValueError, TypeError) as e:
    raise ValueError(f"not a JSON schema ({_sentence(e)}).") from None
  problem = llguidance.LLMatcher.validate_grammar(grammar)
  if problem and not problem.startswith("WARNING"):
    raise ValueError(f"not a JSON schema this server can follow ({_sentence(problem)}).")
  return grammar


def ll_tokenizer(tokenizer, vocab_size: int) -> llguidance.LLTokenizer:
  """llguidance's view of `tokenizer` (a research.text.pretrained.PretrainedTokenizer): the
  bytes of every token, read from its tokenizer.json (byte-level BPE as in SmolLM2 and GPT-2,
  or SentencePiece's byte fallback as in llama); built once per tokenizer. `vocab_size`: the
  model's, which may pad the tokenizer's. ValueError for a vocabulary it cannot read."""
  with _lock:
    cached = _tokenizers.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer and cached[1] == vocab_size:
      return cached[2]
    if tokenizer.eos_id is None:
      raise ValueError("this model's tokenizer has no EOS token, so no answer could end.")
    try:
      built = llguidance.LLTokenizer(tokenizer.tokenizer.to_str(), n_vocab=vocab_size,
                                     eos_token=tokenizer.eos_id)
    except (ValueError, TypeError, RuntimeError) as e:
      raise ValueError(f"this model's vocabulary cannot be read as bytes ({_sentence(e)}), so "
                       "its output cannot be constrained.") from None
    _tokenizers[id(tokenizer)] = (tokenizer, vocab_size, built)
    return built


def checked_grammar(tokenizer, vocab_size: int, schema: dict | None = None) -> str:
  """json_grammar(schema), tried on this model's vocabulary: ValueError for a schema or a
  vocabulary that cannot make an answer, before any generation starts."""
  grammar = json_grammar(schema)
  Constraint(tokenizer, vocab_size, grammar)
  return grammar


class Constraint:
  """One answer's grammar state: allowed_V() before a step, advance(token) after it."""

  def __init__(self, tokenizer, vocab_size: int, grammar: str):
    self.vocab_size = vocab_size
    self._matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer, vocab_size), grammar,
                                         log_level=0)
    self._check()
    if not self.allowed_V().any():
      raise ValueError("this model's vocabulary has no token that can begin the answer.")

  def allowed_V(self) -> np.ndarray:
    """bool [V]: the tokens that may come next (bit i of the bitmask's 32-bit words)."""
    bitmask = np.frombuffer(self._matcher.compute_bitmask(), np.uint8)
    return np.unpackbits(bitmask, bitorder="little")[:self.vocab_size].astype(bool)

  def advance(self, token: int) -> None:
    self._matcher.consume_token(int(token))
    self._check()

  def complete(self) -> bool:
    """Nothing but EOS can follow: the answer is whole."""
    return self._matcher.is_stopped()

  def _check(self):
    if self._matcher.is_error():
      raise ValueError(f"the grammar failed: {_sentence(self._matcher.get_error())}")


def _sentence(error) -> str:
  return " ".join(str(error).split()).rstrip(".")
