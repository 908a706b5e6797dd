"""A tiny random llama as a PretrainedLM: word-level tokenizer (w0..w63) and a chat template;
and the same model rebuilt so that its next-token logits are a chosen vector whatever it reads."""

import jax.numpy as jnp
import tokenizers
from flax import nnx

from research import pretrained
from research.nn import config as config_lib
from research.nn import transformer
from research.text.pretrained import PretrainedTokenizer

VOCAB = 64
# w1 ends a turn; w2, w3, w4 open a system, user and assistant turn.
TEMPLATE = ("{% for m in messages %}{{ {'system': 'w2', 'user': 'w3'}.get(m['role'], 'w4') }} "
            "{{ m['content'] }} w1 {% endfor %}{% if add_generation_prompt %}w4 {% endif %}")
# Class names of one, two and three tokens, so length normalisation has something to do.
CLASS_EXAMPLES = {"w10": "w20 w21 w22", "w11 w12": "w23 w24", "w13 w14 w15": "w25 w26 w27 w28"}
TEXTS = ["w20 w30 w31", "w24 w25", "w40 w41 w42 w43 w44 w45 w46 w47 w48", "w50"]
INSTRUCTION = "w5 {classes} w6"


def tiny_lm(seed: int = 0) -> pretrained.PretrainedLM:
  config = config_lib.llama(vocab_size=VOCAB, num_layers=2, width=32, num_heads=4,
                            num_kv_heads=2, ffn_width=48, max_length=512, init_std=0.2)
  model = transformer.Transformer(config, rngs=nnx.Rngs(seed))
  vocab = {f"w{i}": i for i in range(VOCAB)}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
  tokenizer = PretrainedTokenizer(tok, eos_token="w1", pad_token="w0", template=TEMPLATE)
  return pretrained.PretrainedLM(model, tokenizer, config, "random")



def constant_lm(logits_V, seed: int = 0) -> pretrained.PretrainedLM:
  """`tiny_lm` whose logits are `logits_V` at every position of every input, so the answer a
  classifier should give is known. Every token gets the same embedding, so attention averages
  identical values and every final-normed state is one vector h; the head kernel h c^T / |h|^2
  then maps it to c = `logits_V`."""
  lm = tiny_lm(seed)
  model = lm.model
  table_VxD = model.embed.embedding[...]
  model.embed.embedding.set_value(jnp.broadcast_to(table_VxD[:1], table_VxD.shape))
  h_D = model.hidden(jnp.zeros((1, 1), jnp.int32))[0, 0]
  c_V = jnp.asarray(logits_V, jnp.float32)
  model.head.kernel.set_value(h_D[:, None] * c_V[None, :] / jnp.dot(h_D, h_D))
  return lm
