"""Token ids back to text that holds whole characters only, token by token or all at once.

A byte-level vocabulary (SmolLM2's and GPT-2's BPE) or a byte-fallback one (llama's <0xE6>
tokens) spells a character it has no merge for one byte per token, so "您" can take three
tokens, and the text of the first one or two is U+FFFD, the replacement character. Half a
character is not text: it cannot be shown, copied or matched against a class name, and a U+FFFD
shown in its place stays in the answer for good. So

  the text of ids[:n] = decode(ids[:n]) without U+FFFD: without the last ones, bytes that the
                        next tokens may still complete, and without the others, bytes that
                        nothing can complete any more

and a stream shows each time the new text minus the text shown before. A character that never
completes (the model sampled a lead byte and then a letter, or the answer was cut by its token
budget) is dropped, never shown as U+FFFD; so is a U+FFFD the model writes as a token of its own.
Decoding a window of the last tokens again each time, rather than each token alone, keeps right
the tokenizers whose text of a token depends on its neighbours (SentencePiece drops the leading
space of the first piece only; WordPiece glues "##" pieces to the one before).

  detok = Detokenizer(tokenizer)
  for token in tokens:
    print(detok.feed(token), end="")   # whole characters only
  text(tokenizer, ids)                  # the same text at once, e.g. of an answer cut short
"""

import os

REPLACEMENT = "\ufffd"


class Detokenizer:
  """`feed(token)` returns the text that token completes ("" while a character is unfinished).

  `tokenizer.decode(ids, skip_special_tokens=True)` is all it calls."""

  def __init__(self, tokenizer, context: int = 8):
    self._tokenizer, self._context = tokenizer, context
    self._window: list[int] = []  # the last tokens, decoded together
    self._shown = ""  # the text of the window shown so far

  def _decode(self) -> str:
    return self._tokenizer.decode(self._window, skip_special_tokens=True)

  def feed(self, token) -> str:
    self._window.append(int(token))
    decoded = self._decode()
    pending = decoded.endswith(REPLACEMENT)  # the next tokens may complete the last character
    now = decoded.rstrip(REPLACEMENT).replace(REPLACEMENT, "")  # the rest will never be text
    # A byte-fallback decoder turns a whole run of byte tokens to U+FFFD while the run's last
    # character is unfinished, or for good when one byte of it is bad: characters already
    # shown seem taken back. Wait for the run to end; then what follows the shared start is new.
    if pending and not now.startswith(self._shown):
      return ""
    piece = now[len(os.path.commonprefix([self._shown, now])):]
    self._shown = now
    if not pending and len(self._window) > 2 * self._context:  # O(1) per token
      self._slide()
    return piece

  def _slide(self):
    """Drops the window's first tokens, keeping `context` or more, so that it starts at a
    token whose text is whole by itself: never inside a run of byte tokens, which a
    byte-fallback decoder decodes as one."""
    end = len(self._window) - self._context
    for start in range(end, end - self._context, -1):  # else try again at the next token
      alone = self._tokenizer.decode(self._window[start:start + 1], skip_special_tokens=True)
      if REPLACEMENT not in alone:
        self._window = self._window[start:]
        self._shown = self._decode().replace(REPLACEMENT, "")
        return


def pieces(tokenizer, token_ids):
  """One text piece per token (maybe ""): joined, the text of whole characters."""
  detok = Detokenizer(tokenizer)
  for token in token_ids:
    yield detok.feed(token)


def text(tokenizer, token_ids) -> str:
  """The text of `token_ids` without an unfinished last character (an answer cut by its token
  budget) and without U+FFFD: what a stream of them shows."""
  return "".join(pieces(tokenizer, token_ids))
