"""GGUF files (llama.cpp's format) read through the `gguf` package: metadata, and tensors
dequantized to float32 in the (out_features, in_features) order that HF checkpoints use."""

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

# The types we dequantize; a file holding any other stops with a clear error.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q6_K")
# The types research/nn/quantized.py keeps quantized in memory (GgufFile.blocks unpacks them).
BLOCK_TYPES = ("Q8_0", "Q4_1")


@dataclasses.dataclass
class GgufFile:
  path: Path
  metadata: dict[str, Any]
  tensor_types: dict[str, str]             # name -> GGML type name, e.g. "Q4_1"
  tensor_shapes: dict[str, tuple[int, ...]]  # name -> shape in HF order (rows first)
  _reader: Any = dataclasses.field(repr=False, default=None)

  @property
  def architecture(self) -> str:
    return self.required("general.architecture")

  def arch_value(self, key: str, default=None):
    """`llama.block_count` for key="block_count" in a llama file."""
    return self.metadata.get(f"{self.architecture}.{key}", default)

  def required(self, key: str):
    return required(self, key)

  def tensor(self, name: str) -> np.ndarray:
    """One tensor, dequantized to float32."""
    import gguf  # pylint: disable=g-import-not-at-top
    if name not in self.tensor_types:
      raise KeyError(f"{self.path}: no tensor named {name!r}.")
    raw = self._tensors_by_name[name]
    kind = raw.tensor_type.name
    if kind not in SUPPORTED_TYPES:
      raise ValueError(f"{self.path}: tensor {name!r} is stored as {kind}, which this reader "
                       f"does not dequantize (supported: {', '.join(SUPPORTED_TYPES)}).")
    values = gguf.quants.dequantize(raw.data, raw.tensor_type)
    return np.asarray(values, dtype=np.float32).reshape(self.tensor_shapes[name])

  def blocks(self, name: str):
    """A Q8_0 or Q4_1 tensor as it is stored, unpacked: (q, d, m) for w = d * q (+ m) per
    block of 32 weights along a row. q: int8 rows x cols (Q8_0), or uint8 rows x cols/2 with
    weight j of a block in the low nibble of its byte j and weight j + 16 in the high nibble
    (Q4_1); d and m: float32 rows x cols/32 (m None for Q8_0)."""
    kind = self.tensor_types.get(name)
    if kind not in BLOCK_TYPES:
      raise ValueError(f"{self.path}: tensor {name!r} is {kind}, not one of the block types "
                       f"kept quantized ({', '.join(BLOCK_TYPES)}).")
    rows, cols = self.tensor_shapes[name]
    blocks = cols // 32
    raw = np.asarray(self._tensors_by_name[name].data, np.uint8).reshape(rows, blocks, -1)
    scale = lambda at: raw[..., at:at + 2].copy().view(np.float16)[..., 0].astype(np.float32)
    if kind == "Q8_0":  # a block: float16 d, then 32 int8
      return raw[..., 2:].copy().view(np.int8).reshape(rows, cols), scale(0), None
    return raw[..., 4:].reshape(rows, cols // 2).copy(), scale(0), scale(2)  # d, m, 16 bytes

  @property
  def _tensors_by_name(self):
    return {t.name: t for t in self._reader.tensors}


def required(gguf, key: str):
  """The metadata value at `key` of `gguf` (anything with .path and .metadata); a file
  without it stops with a sentence naming both."""
  if key not in gguf.metadata:
    raise ValueError(f"{gguf.path}: the metadata has no {key}, which loading the model needs.")
  return gguf.metadata[key]


def read(path) -> GgufFile:
  """Opens a GGUF file (memory-mapped); tensors are dequantized only when asked for."""
  import gguf  # pylint: disable=g-import-not-at-top
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such GGUF file.")
  try:
    reader = gguf.GGUFReader(path)
  except Exception as e:  # the package raises ValueError, struct.error, ... on bad files
    raise ValueError(f"{path}: not a readable GGUF file ({e}).") from e
  metadata = {}
  for key, field in reader.fields.items():
    if key.startswith("GGUF."):
      continue
    metadata[key] = field.contents()
  types = {t.name: t.tensor_type.name for t in reader.tensors}
  # GGUF lists dimensions fastest-first (ne0 = columns); HF order is the reverse.
  shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
  return GgufFile(path, metadata, types, shapes, reader)


def unpermute_rope_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
  """Undoes the row order that llama.cpp's converter gives q and k projections.

  The converter interleaves each head's two rotary halves (rows [a0 b0 a1 b1 ...]) so that
  llama.cpp can rotate adjacent pairs; HF's rotate-half RoPE wants [a0 a1 ... b0 b1 ...].
  """
  rows = weight.shape[0]
  head_dim = rows // num_heads
  if num_heads * head_dim != rows or head_dim % 2:
    raise ValueError(f"cannot unpermute {rows} rows into {num_heads} heads of even width.")
  rest = weight.shape[1:]
  w = weight.reshape(num_heads, head_dim // 2, 2, *rest)   # [H, K/2, 2, ...] as stored
  return w.swapaxes(1, 2).reshape(weight.shape)            # [H, 2, K/2, ...] halves together


def permute_rope_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
  """The converter's direction: HF rotate-half rows to llama.cpp's interleaved pairs."""
  rows = weight.shape[0]
  head_dim = rows // num_heads
  rest = weight.shape[1:]
  w = weight.reshape(num_heads, 2, head_dim // 2, *rest)
  return w.swapaxes(1, 2).reshape(weight.shape)
