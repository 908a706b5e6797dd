"""The notebook's first snippet: text -> token ids -> the last hidden state (B x L x D).

  ids = tok.encode("Hello world")
  h_BxLxD = last_hidden_state(lm.model, jnp.asarray([ids]))

The last hidden state is the output of the final norm, the vectors the head turns into logits
(HF's `last_hidden_state`); with a tied head, logits = h @ embed^T.
"""

import jax.numpy as jnp


def last_hidden_state(model, tokens_BxL, positions_BxL=None):
  b, l = tokens_BxL.shape
  if positions_BxL is None:
    positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
  x_BxLxD = model.embed_tokens(tokens_BxL, positions_BxL)
  for block in model.blocks:
    x_BxLxD, _ = block(x_BxLxD, positions_BxL)
  return model.final_norm(x_BxLxD)


def describe(tokenizer, model, text: str) -> tuple[list[int], object, list[str]]:
  """Token ids, the hidden state of one text (1 x L x D), and printable lines with shapes."""
  ids = tokenizer.encode(text)
  tokens_1xL = jnp.asarray([ids], jnp.int32)
  h_1xLxD = last_hidden_state(model, tokens_1xL)
  pieces = [tokenizer.decode([i]) for i in ids]
  lines = [f"text: {text!r}",
           f"token ids ({len(ids)}): {ids}",
           f"tokens: {pieces}",
           f"input tokens B x L: {tuple(tokens_1xL.shape)}",
           f"last hidden state B x L x D: {tuple(h_1xLxD.shape)} {h_1xLxD.dtype}",
           f"h[0, -1, :5]: {[round(float(v), 4) for v in h_1xLxD[0, -1, :5]]}"]
  return ids, h_1xLxD, lines
