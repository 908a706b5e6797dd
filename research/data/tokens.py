"""Token files: a 32-byte header, then the ids as little-endian uint16 or uint32, read back as a
memory map so a corpus larger than RAM trains without loading it.

Header: b"BFAITOK\\0", dtype name (8 bytes ASCII, NUL-padded), count (uint64 LE), 8 zero bytes.
nanoGPT's headerless train.bin opens too: `open_tokens("train.bin", dtype="uint16")`.
"""

import struct
from pathlib import Path

import numpy as np

from research import files

MAGIC = b"BFAITOK\0"
HEADER_BYTES = 32  # a multiple of 4, so the uint32 payload stays aligned
_HEADER = struct.Struct("<8s8sQ8x")
_DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


def smallest_dtype(vocab_size: int) -> np.dtype:
  """uint16 holds ids below 65536; larger vocabularies need uint32."""
  return _DTYPES["uint16"] if vocab_size <= 2**16 else _DTYPES["uint32"]


def write_tokens(path, ids, dtype=None) -> Path:
  """Writes token ids atomically; dtype defaults to the smallest that holds max(ids)."""
  ids = np.asarray(ids)
  if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
    raise ValueError(f"{path}: expected a 1-D array of integer ids, got {ids.dtype} "
                     f"with shape {ids.shape}.")
  top = int(ids.max()) if ids.size else 0
  if ids.size and int(ids.min()) < 0:
    raise ValueError(f"{path}: token ids must be >= 0, found {int(ids.min())}.")
  dtype = smallest_dtype(top + 1) if dtype is None else _DTYPES.get(np.dtype(dtype).name)
  if dtype is None:
    raise ValueError(f"{path}: dtype must be uint16 or uint32.")
  if top > np.iinfo(dtype).max:
    raise ValueError(f"{path}: id {top} does not fit in {dtype.name}; use uint32.")
  header = _HEADER.pack(MAGIC, dtype.name.encode("ascii"), ids.size)
  with files.atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(header)
      ids.astype(dtype, copy=False).tofile(f)
  return Path(path)


def write_token_chunks(path, chunks, dtype) -> Path:
  """Streams chunks of ids to a token file (for corpora larger than RAM); atomic like
  write_tokens. The dtype must be given: the largest id is not known in advance."""
  dtype = _DTYPES.get(np.dtype(dtype).name)
  if dtype is None:
    raise ValueError(f"{path}: dtype must be uint16 or uint32.")
  count = 0
  with files.atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(_HEADER.pack(MAGIC, dtype.name.encode("ascii"), 0))
      for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.size and (int(chunk.min()) < 0 or int(chunk.max()) > np.iinfo(dtype).max):
          raise ValueError(f"{path}: ids must lie in [0, {np.iinfo(dtype).max}] for "
                           f"{dtype.name}; chunk {count} holds {int(chunk.min())}.."
                           f"{int(chunk.max())}.")
        chunk.astype(dtype, copy=False).tofile(f)
        count += chunk.size
      f.seek(0)
      f.write(_HEADER.pack(MAGIC, dtype.name.encode("ascii"), count))
  return Path(path)


def encode_to_file(tokenizer, text, path, chunk_chars: int = 1 << 20) -> Path:
  """Encodes text (a str, or an iterable of documents) into a token file, chunk by chunk.

  Chunks of about chunk_chars end just after a newline, and no piece spans a newline (the char
  tokenizer has it as a token, our BPE as a byte that never merges), so the file holds
  tokenizer.encode(document) for each document, back to back, whenever no line is longer
  than chunk_chars.
  """
  documents = [text] if isinstance(text, str) else text
  chunks = (tokenizer.encode(c) for d in documents for c in _newline_chunks(d, chunk_chars))
  return write_token_chunks(path, chunks, smallest_dtype(tokenizer.vocab_size))


def _newline_chunks(text: str, size: int):
  start = 0
  while start < len(text):
    end = text.rfind("\n", start, start + size) + 1 if start + size < len(text) else len(text)
    end = end if end > start else min(start + size, len(text))  # a line longer than `size`
    yield text[start:end]
    start = end


def open_tokens(path, dtype=None) -> np.ndarray:
  """A read-only np.memmap of the ids (uint16 or uint32); pages load only when read."""
  path = Path(path)
  try:
    size = path.stat().st_size
    with open(path, "rb") as f:
      head = f.read(HEADER_BYTES)
  except OSError as e:
    raise FileNotFoundError(f"{path}: cannot read the token file ({e.strerror}).") from None
  if head.startswith(MAGIC) and len(head) == HEADER_BYTES:
    _, name, count = _HEADER.unpack(head)
    name = name.rstrip(b"\0").decode("ascii", "replace")
    if name not in _DTYPES:
      raise ValueError(f"{path}: header names dtype {name!r}; expected uint16 or uint32.")
    file_dtype, offset = _DTYPES[name], HEADER_BYTES
    if dtype is not None and np.dtype(dtype) != file_dtype:
      raise ValueError(f"{path}: the file holds {name}, not {np.dtype(dtype).name}.")
    if size != offset + count * file_dtype.itemsize:
      raise ValueError(f"{path}: {size} bytes, but the header promises {count} {name} ids; "
                       "the file is truncated or not a token file.")
  elif dtype is not None:
    file_dtype, offset = np.dtype(dtype).newbyteorder("<"), 0
    if size % file_dtype.itemsize:
      raise ValueError(f"{path}: {size} bytes is not a whole number of {file_dtype.name} ids.")
    count = size // file_dtype.itemsize
  else:
    raise ValueError(f"{path}: no token-file header; pass dtype= to read a raw id file.")
  if count == 0:
    return np.zeros((0,), file_dtype)  # mmap cannot map zero bytes
  return np.memmap(path, dtype=file_dtype, mode="r", offset=offset, shape=(count,))


def split_train_val(tokens, val_fraction: float = 0.1):
  """The first (1 - val_fraction) of the tokens train, the rest validate (nanoGPT's split).

  Slices of a memmap stay memmaps: nothing is copied.
  """
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f"val_fraction={val_fraction}: expected a number in [0, 1).")
  n_train = int(len(tokens) * (1.0 - val_fraction))
  return tokens[:n_train], tokens[n_train:]
