"""Bad-input cases for model files (see corpus.py): GGUF and safetensors files, HF directories,
their tokenizer files and config.json, PEFT adapters, a checkpoint folder of another model, and
a disk that fills up while a checkpoint or an export is written.

Every case starts from one tiny llama (tests/tiny_llama.py), written once per session, and
breaks one thing in a copy of it.
"""

import atexit
import contextlib
import errno
import functools
import json
import pkgutil
import shutil
import struct
import tempfile
import types
from pathlib import Path
from unittest import mock

import numpy as np

from tests.bad_input.corpus import Case



def _disk_is_full(*args, **kwargs):
  """What a write on a full disk raises (a new error each time, as the OS gives)."""
  raise OSError(errno.ENOSPC, "No space left on device")


@functools.cache
def _tiny_dir() -> Path:
  from tests import tiny_llama  # pylint: disable=g-import-not-at-top
  folder = Path(tempfile.mkdtemp(prefix="bad-input-llama-"))
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
  return tiny_llama.write_tiny_llama(folder)


def _copy(tmp_path, name="model") -> Path:
  return Path(shutil.copytree(_tiny_dir(), tmp_path / name))


def _load(path):
  from research import pretrained  # pylint: disable=g-import-not-at-top
  return pretrained.load_model(str(path))


def _edit_json(path: Path, change) -> None:
  obj = json.loads(path.read_text())
  change(obj)
  path.write_text(json.dumps(obj))


def _pop(*keys):
  return lambda obj: [obj.pop(k) for k in keys]


def _rewrite_tensors(directory: Path, change) -> None:
  """The directory's tensors after change(tensors) (a dict, edited in place)."""
  from third_party import hf_checkpoint  # pylint: disable=g-import-not-at-top
  tensors = hf_checkpoint.load_tensors(directory)
  change(tensors)
  hf_checkpoint.write(directory, tensors, hf_checkpoint.read_config(directory))


# --- GGUF: the tiny llama as llama.cpp's converter would write it --------------------------

def _write_gguf(path: Path, drop=(), reshape=(), quantize=(), skip_keys=(),
                tokenizer_model="gpt2", eos_id=1) -> Path:
  """The tiny llama as a GGUF file, less the tensors in `drop`, with the tensors in
  `reshape` cut to half their rows, those in `quantize` stored as Q5_0, and no metadata keys
  in `skip_keys`."""
  import gguf  # pylint: disable=g-import-not-at-top
  from third_party import gguf_file  # pylint: disable=g-import-not-at-top
  from third_party import hf_checkpoint  # pylint: disable=g-import-not-at-top
  from third_party import hf_names  # pylint: disable=g-import-not-at-top
  tensors = hf_checkpoint.load_tensors(_tiny_dir())
  c = hf_checkpoint.read_config(_tiny_dir())
  writer = gguf.GGUFWriter(str(path), "llama")
  # The vocabulary: 63 one-character tokens '0'..'n' and one merge, '0' '1' -> '01'.
  tokens = [chr(48 + i) for i in range(c["vocab_size"] - 1)] + ["01"]
  keys = {
      "llama.block_count": lambda k: writer.add_uint32(k, c["num_hidden_layers"]),
      "llama.embedding_length": lambda k: writer.add_uint32(k, c["hidden_size"]),
      "llama.feed_forward_length": lambda k: writer.add_uint32(k, c["intermediate_size"]),
      "llama.attention.head_count": lambda k: writer.add_uint32(k, c["num_attention_heads"]),
      "llama.attention.head_count_kv": lambda k: writer.add_uint32(k, c["num_key_value_heads"]),
      "llama.context_length": lambda k: writer.add_uint32(k, c["max_position_embeddings"]),
      "llama.rope.freq_base": lambda k: writer.add_float32(k, c["rope_parameters"]["rope_theta"]),
      "llama.attention.layer_norm_rms_epsilon": lambda k: writer.add_float32(k, 1e-6),
      "tokenizer.ggml.model": lambda k: writer.add_string(k, tokenizer_model),
      "tokenizer.ggml.tokens": lambda k: writer.add_array(k, tokens),
      "tokenizer.ggml.merges": lambda k: writer.add_array(k, ["0 1"]),
      "tokenizer.ggml.eos_token_id": lambda k: writer.add_uint32(k, eos_id),
  }
  for key, add in keys.items():
    if key not in skip_keys:
      add(key)
  for hf, array in sorted(tensors.items()):
    name = hf_names.hf_to_gguf(hf)
    if name in drop:
      continue
    array = np.asarray(array, np.float32)
    if name.endswith(("attn_q.weight", "attn_k.weight")):
      heads = c["num_attention_heads"] if "attn_q" in name else c["num_key_value_heads"]
      array = gguf_file.permute_rope_rows(array, heads)
    if name in reshape:
      array = array[: array.shape[0] // 2]
    if name in quantize:
      q = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q5_0)
      writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q5_0)
    else:
      writer.add_tensor(name, array)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return path


@functools.cache
def _good_gguf_bytes() -> bytes:
  folder = Path(tempfile.mkdtemp(prefix="bad-input-gguf-"))
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
  return _write_gguf(folder / "tiny.gguf").read_bytes()


def _gguf_bytes(tmp_path, change) -> Path:
  path = tmp_path / "tiny.gguf"
  path.write_bytes(change(_good_gguf_bytes()))
  return path


def _gguf_case(name, expect, **kwargs):
  return Case(f"gguf {name}", lambda t: _load(_write_gguf(t / "tiny.gguf", **kwargs)), expect)


GGUF = [
    Case("gguf truncated", lambda t: _load(_gguf_bytes(t, lambda b: b[: len(b) // 2])),
         r"tiny\.gguf: not a readable GGUF file"),
    Case("gguf wrong magic", lambda t: _load(_gguf_bytes(t, lambda b: b"GGML" + b[4:])),
         r"tiny\.gguf: not a readable GGUF file.*(magic|GGUF)"),
    Case("gguf unsupported version",
         lambda t: _load(_gguf_bytes(t, lambda b: b[:4] + struct.pack("<I", 99) + b[8:])),
         r"tiny\.gguf: .*version 99"),
    Case("gguf header only", lambda t: _load(_gguf_bytes(t, lambda b: b[:20])),
         r"tiny\.gguf: "),
    Case("gguf empty file", lambda t: _load(_gguf_bytes(t, lambda b: b"")), r"tiny\.gguf: "),
    _gguf_case("missing tensor", r"tiny\.gguf: no tensor .*blk\.1\.ffn_up\.weight",
               drop=("blk.1.ffn_up.weight",)),
    _gguf_case("wrong shape", r"tiny\.gguf: .*blk\.0\.ffn_up\.weight.*shape",
               reshape=("blk.0.ffn_up.weight",)),
    _gguf_case("unknown quant type", r"tiny\.gguf: tensor 'blk\.0\.attn_q\.weight' is stored "
               r"as Q5_0", quantize=("blk.0.attn_q.weight",)),
    _gguf_case("no head count", r"tiny\.gguf: .*llama\.attention\.head_count",
               skip_keys=("llama.attention.head_count",)),
    _gguf_case("no embedding length", r"tiny\.gguf: .*llama\.embedding_length",
               skip_keys=("llama.embedding_length",)),
    _gguf_case("no vocabulary", r"tiny\.gguf: .*tokenizer\.ggml\.tokens",
               skip_keys=("tokenizer.ggml.tokens",)),
    # no merges is no error: a word-level vocabulary (as export writes one) has none
    Case("gguf of another architecture",
         lambda t: _load(_gguf_bytes(t, lambda b: b.replace(b"llama", b"mamba"))),
         r"tiny\.gguf: architecture 'mamba' is not supported"),
    _gguf_case("eos id past the vocabulary", r"tiny\.gguf: tokenizer\.ggml\.eos_token_id is "
               r"999, past the 64 tokens", eos_id=999),
    _gguf_case("sentencepiece vocabulary", r"tiny\.gguf: tokenizer\.ggml\.model is 'llama'",
               tokenizer_model="llama"),
]


# --- safetensors files and HF directories ---------------------------------------------------

def _break_safetensors(change):
  def run(tmp_path):
    directory = _copy(tmp_path)
    path = directory / "model.safetensors"
    path.write_bytes(change(path.read_bytes()))
    return _load(directory)
  return run


def _header(text: bytes, length=None) -> bytes:
  return struct.pack("<Q", len(text) if length is None else length) + text


def _tensors_case(name, expect, change):
  def run(tmp_path):
    directory = _copy(tmp_path)
    _rewrite_tensors(directory, change)
    return _load(directory)
  return Case(f"hf {name}", run, expect)


def _drop_layer(layer):
  def change(tensors):
    for name in [n for n in tensors if n.startswith(f"model.layers.{layer}.")]:
      del tensors[name]
  return change


def _set(name, value):
  return lambda tensors: tensors.__setitem__(name, value(tensors[name]))


def _with_file(name, text=None, change=None):
  def run(tmp_path):
    directory = _copy(tmp_path)
    if text is None and change is None:
      (directory / name).unlink()
    elif change is not None:
      _edit_json(directory / name, change)
    else:
      (directory / name).write_text(text)
    return _load(directory)
  return run


def _sharded(tmp_path, weight_map) -> Path:
  directory = _copy(tmp_path)
  (directory / "model.safetensors").rename(directory / "model-00001-of-00002.safetensors")
  (directory / "model.safetensors.index.json").write_text(weight_map)
  return directory


_INDEX = json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                                    "lm_head.weight": "model-00002-of-00002.safetensors"}})

HF = [
    Case("safetensors truncated", _break_safetensors(lambda b: b[: len(b) // 2]),
         r"model\.safetensors: "),
    Case("safetensors header not JSON",
         _break_safetensors(lambda b: _header(b"{not json at all}") + b[100:]),
         r"model\.safetensors: .*header"),
    Case("safetensors header length past the file",
         _break_safetensors(lambda b: _header(b"", length=10**12) + b[8:]),
         r"model\.safetensors: .*header"),
    Case("safetensors empty file", _break_safetensors(lambda b: b""), r"model\.safetensors: "),
    _tensors_case("no lm_head and untied embeddings", r"model: no tensor for parameter "
                  r"head\.kernel", lambda tensors: tensors.pop("lm_head.weight")),
    _tensors_case("a layer missing", r"model: no tensor for parameter blocks\.1\.",
                  _drop_layer(1)),
    _tensors_case("tensor of the wrong shape",
                  r"model: tensor 'model\.layers\.0\.mlp\.up_proj\.weight' has shape "
                  r"\(32, 48\), the config says \(48, 32\)",
                  _set("model.layers.0.mlp.up_proj.weight", lambda w: w.T.copy())),
    _tensors_case("integer tensor", r"model: tensor 'model\.embed_tokens\.weight' .*int32",
                  _set("model.embed_tokens.weight", lambda w: w.astype(np.int32))),
    _tensors_case("tensor of another model", r"model: tensor 'vision_tower\.weight' has no "
                  r"place", lambda tensors: tensors.update(
                      {"vision_tower.weight": np.zeros((2, 2), np.float32)})),
    Case("hf sharded index names a missing shard", lambda t: _load(_sharded(t, _INDEX)),
         r"model\.safetensors\.index\.json lists model-00002-of-00002\.safetensors"),
    Case("hf sharded index not JSON", lambda t: _load(_sharded(t, '{"weight_map": {,}}')),
         r"model\.safetensors\.index\.json: line 1: not valid JSON"),
    Case("hf sharded index without a weight_map",
         lambda t: _load(_sharded(t, json.dumps({"metadata": {}}))),
         r"model\.safetensors\.index\.json: .*weight_map"),
    Case("a model file that is neither GGUF nor a folder",
         lambda t: [(t / "model.bin").write_bytes(b"\0" * 64), _load(t / "model.bin")],
         r"model source '.*model\.bin': expected one of \['smollm2-135m-instruct'\], a \.gguf "
         r"file or an HF model directory"),
    Case("hf directory without weights", _with_file("model.safetensors"),
         r"model: no model\.safetensors"),
]


# --- tokenizer files ------------------------------------------------------------------------

TOKENIZER = [
    Case("tokenizer.json not JSON", _with_file("tokenizer.json", '{"model": {"vocab": {"t0": 0,}'),
         r"tokenizer\.json: .*not valid JSON"),
    Case("tokenizer.json without a model", _with_file("tokenizer.json", change=_pop("model")),
         r"tokenizer\.json: .*model"),
    Case("tokenizer.json with a model of unknown type",
         _with_file("tokenizer.json", change=lambda t: t["model"].update(type="Unigram9")),
         r"tokenizer\.json: not a tokenizer that the tokenizers library can build"),
    Case("tokenizer.json is a list", _with_file("tokenizer.json", "[1, 2, 3]"),
         r"tokenizer\.json: "),
    Case("tokenizer.json missing", _with_file("tokenizer.json"),
         r"tokenizer\.json: no tokenizer\.json"),
    Case("tokenizer_config.json not JSON",
         _with_file("tokenizer_config.json", '{"eos_token": "t1",\n "pad_token": "t0",}'),
         r"tokenizer_config\.json: line 2: not valid JSON"),
    Case("tokenizer_config.json is a string", _with_file("tokenizer_config.json", '"t1"'),
         r"tokenizer_config\.json: expected a JSON object \{\.\.\.\}, found a string"),
    Case("tokenizer eos_token not in the vocabulary",
         _with_file("tokenizer_config.json", change=lambda c: c.update(eos_token="</s>")),
         r"tokenizer_config\.json: eos_token '</s>' is not in the vocabulary"),
]


# --- HF config.json -------------------------------------------------------------------------

def _config(change=None, text=None):
  def run(tmp_path):
    directory = _copy(tmp_path)
    if text is not None:
      (directory / "config.json").write_text(text)
    else:
      _edit_json(directory / "config.json", change)
    return _load(directory)
  return run


CONFIG = [
    Case("config.json not JSON", _config(text='{"model_type": "llama",\n}'),
         r"config\.json: line 2: not valid JSON"),
    Case("config.json is a list", _config(text="[]"),
         r"config\.json: expected a JSON object \{\.\.\.\}, found a list"),
    Case("config.json without hidden_size", _config(_pop("hidden_size")),
         r"config\.json: .*hidden_size"),
    Case("config.json without num_attention_heads", _config(_pop("num_attention_heads")),
         r"config\.json: .*num_attention_heads"),
    Case("config.json unknown model_type",
         _config(lambda c: c.update(model_type="mamba", architectures=["MambaForCausalLM"])),
         r"config\.json: model_type 'mamba' is not supported"),
    Case("config.json without model_type", _config(_pop("model_type")),
         r"config\.json: model_type None is not supported"),
    Case("config.json hidden_size not divisible by heads",
         _config(lambda c: [c.update(num_attention_heads=5, num_key_value_heads=5),
                           c.pop("head_dim")]),
         r"config\.json: hidden_size 32 is not divisible by num_attention_heads 5"),
    Case("config.json heads not divisible by kv heads",
         _config(lambda c: c.update(num_key_value_heads=3)),
         r"config\.json: .*num_key_value_heads"),
    Case("config.json hidden_size a string", _config(lambda c: c.update(hidden_size="32")),
         r"config\.json: hidden_size '32'.*integer"),
    Case("config.json rope scaling", _config(lambda c: c.update(
        rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1000.0})),
         r"config\.json: rope scaling 'yarn' is not supported"),
    Case("config.json another activation", _config(lambda c: c.update(hidden_act="gelu")),
         r"config\.json: hidden_act 'gelu'"),
    Case("config.json more layers than the weights",
         _config(lambda c: c.update(num_hidden_layers=3)),
         r"model: no tensor for parameter blocks\.2\."),
]


# --- PEFT adapters --------------------------------------------------------------------------

def _adapter(tmp_path, rank=4) -> Path:
  """A PEFT adapter folder (rank `rank`, every linear) of the tiny llama."""
  from research.finetune import export  # pylint: disable=g-import-not-at-top
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  lm = _load(_tiny_dir())
  lora.apply_lora(lm.model, lambda path: True, rank, 2 * rank)
  return export.write_adapter(lm.model, tmp_path / "adapter", str(_tiny_dir()))


def _apply_adapter(change):
  def run(tmp_path):
    from research.finetune import reward  # pylint: disable=g-import-not-at-top
    directory = _adapter(tmp_path)
    change(directory)
    return reward.apply_adapter(_load(_tiny_dir()).model, directory)
  return run


ADAPTER = [
    Case("adapter_config.json not JSON",
         _apply_adapter(lambda d: (d / "adapter_config.json").write_text('{"r": 4,,}')),
         r"adapter_config\.json: line 1: not valid JSON"),
    Case("adapter_config.json without r",
         _apply_adapter(lambda d: _edit_json(d / "adapter_config.json", _pop("r"))),
         r"adapter_config\.json: .*'r'"),
    Case("adapter of another rank",
         _apply_adapter(lambda d: _edit_json(d / "adapter_config.json",
                                             lambda c: c.update(r=8))),
         r"adapter_model\.safetensors: .*lora_A has shape \(4, 32\).*\(8, 32\)"),
    Case("adapter weights missing",
         _apply_adapter(lambda d: (d / "adapter_model.safetensors").unlink()),
         r"adapter_model\.safetensors"),
]


# --- a checkpoint folder of another model ---------------------------------------------------

def _finetune_config(output_dir, rank=4, finetuning_type="lora"):
  from research.finetune import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.defaults()
  c.model, c.output_dir = str(_tiny_dir()), str(output_dir)
  c.max_steps, c.save_steps, c.logging_steps = 4, 2, 2
  c.lora_rank, c.finetuning_type = rank, finetuning_type
  return c


def _tuned_model(config):
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  lm = _load(_tiny_dir())
  if config.finetuning_type == "lora":
    lora.apply_lora(lm.model, lambda path: True, config.lora_rank, 2 * config.lora_rank)
  return lm.model


def _save_finetune(config, steps=(2,)) -> None:
  """Checkpoints in config.output_dir as a fine-tune of `config` would leave them."""
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  from research.train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from research.train import state as state_lib  # pylint: disable=g-import-not-at-top
  model = _tuned_model(config)
  _, state = state_lib.create(model, trainer.make_optimizer(config, config.max_steps),
                              trainer.trainable_filter(config))
  checkpoints = checkpoint_lib.Checkpoints(Path(config.output_dir) / "checkpoints",
                                           best_metric=None)
  for step in steps:
    checkpoints.save(step, state._replace(step=np.int32(step)))
  checkpoints.wait()
  checkpoints.close()


def _step_folders(tmp_path):
  return sorted(p.name for p in (tmp_path / "out" / "checkpoints" / "last").iterdir())


def _resume_other(saved, resumed):
  """Fine-tune checkpoints of `saved` in out/, then a run of `resumed` resumes there."""
  def run(tmp_path):
    from research.finetune import sft  # pylint: disable=g-import-not-at-top
    from research.finetune import trainer  # pylint: disable=g-import-not-at-top
    _save_finetune(_finetune_config(tmp_path / "out", **saved))
    config = _finetune_config(tmp_path / "out", **resumed)
    batches = types.SimpleNamespace(steps_per_epoch=4, step_batch=None)
    return trainer.train(_tuned_model(config), config, batches, None, sft.sft_objective,
                         show_progress=False)
  return run


def _restore_other(saved, restored):
  def run(tmp_path):
    from research.finetune import trainer  # pylint: disable=g-import-not-at-top
    _save_finetune(_finetune_config(tmp_path / "out", **saved))
    config = _finetune_config(tmp_path / "out", **restored)
    return trainer.restore(_tuned_model(config), config)
  return run


def _restore_damaged(tmp_path):
  """Fine-tune checkpoints at steps 2 and 4, the newest with its metadata gone (a disk
  error, a copy cut short), then a restore."""
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  config = _finetune_config(tmp_path / "out")
  _save_finetune(config, steps=(2, 4))
  (tmp_path / "out" / "checkpoints" / "last" / "4" / "default" / "_METADATA").unlink()
  return trainer.restore(_tuned_model(config), config)


def _other_model_left_alone(tmp_path):
  assert _step_folders(tmp_path) == ["2"], _step_folders(tmp_path)


def _small_lm(width):
  """A one-layer Transformer of d_model `width`, all zeros (no random init to compile)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from research.nn import config as config_lib  # pylint: disable=g-import-not-at-top
  from research.nn import transformer  # pylint: disable=g-import-not-at-top
  config = config_lib.ModelConfig(vocab_size=64, num_layers=1, width=width, num_heads=4,
                                  max_length=16)
  graphdef, state = nnx.split(transformer.abstract_model(config))
  zeros = lambda s: (jax.random.key(0) if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key)
                     else jnp.zeros(s.shape, s.dtype))
  return nnx.merge(graphdef, jax.tree.map(zeros, state))


def _resume_pretraining_of_another_width(tmp_path):
  """Checkpoints of a d_model 64 run in run/, then a d_model 32 run resumes there."""
  import optax  # pylint: disable=g-import-not-at-top
  from research.train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from research.train import loop  # pylint: disable=g-import-not-at-top
  from research.train import state as state_lib  # pylint: disable=g-import-not-at-top
  tx = optax.adam(1e-3)
  _, state = state_lib.create(_small_lm(64), tx)
  checkpoints = checkpoint_lib.Checkpoints(tmp_path / "run" / "checkpoints", best_metric=None)
  checkpoints.save(4, state._replace(step=np.int32(4)))
  checkpoints.wait()
  checkpoints.close()
  batches = types.SimpleNamespace(step_batch=None)
  return loop.train(_small_lm(32), tx, batches, loop.Settings(steps=8, checkpoint_every=4),
                    workdir=tmp_path / "run", show_progress=False)


def _width_64_left_alone(tmp_path):
  assert sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "last").iterdir()) == ["4"]


_CHECKPOINT = r"out/checkpoints/last/2 holds a checkpoint of another model: "
CHECKPOINTS = [
    Case("resume pretraining over another width's checkpoints",
         _resume_pretraining_of_another_width,
         r"run/checkpoints/last/4 holds a checkpoint of another model: params\.\S+ is "
         r"\(.*64.*\) there and \(.*32.*\) in this run", _width_64_left_alone),
    Case("resume a fine-tune over another rank's checkpoints",
         _resume_other({"rank": 8}, {"rank": 4}),
         _CHECKPOINT + r"params\.blocks\.0\.attn\.key\.lora_a is \(8, 32\) there and "
         r"\(4, 32\) in this run; start the run in a new folder, or delete that one\.",
         _other_model_left_alone),
    Case("resume a LoRA fine-tune over a full fine-tune's checkpoints",
         _resume_other({"finetuning_type": "full"}, {"finetuning_type": "lora"}),
         _CHECKPOINT, _other_model_left_alone),
    Case("restore a fine-tune from another rank's checkpoints",
         _restore_other({"rank": 4}, {"rank": 2}),
         _CHECKPOINT + r".*lora_a is \(4, 32\) there and \(2, 32\)", _other_model_left_alone),
    Case("restore from a damaged checkpoint", _restore_damaged,
         r"out/checkpoints/last/4: the checkpoint's metadata cannot be read.*delete that folder"),
    Case("restore a full fine-tune from LoRA checkpoints",
         _restore_other({"finetuning_type": "lora"}, {"finetuning_type": "full"}),
         _CHECKPOINT, _other_model_left_alone),
]


# --- a full disk ----------------------------------------------------------------------------

async def _disk_full(*args, **kwargs):
  _disk_is_full()


@contextlib.contextmanager
def _orbax_disk_full():
  """Every array orbax writes finds the disk full. Orbax writes through tensorstore, past
  Python's file calls, so its serialization coroutines are what fail."""
  # pylint: disable-next=g-import-not-at-top
  from orbax.checkpoint._src.serialization import serialization
  with mock.patch.object(serialization, "async_serialize", _disk_full), \
       mock.patch.object(serialization, "async_serialize_from_host", _disk_full):
    yield


def _checkpoint_on_full_disk(tmp_path):
  # pylint: disable=g-import-not-at-top
  from research.finetune import trainer
  from research.train import checkpoint as checkpoint_lib
  from research.train import state as state_lib
  # pylint: enable=g-import-not-at-top
  config = _finetune_config(tmp_path / "out")
  _save_finetune(config)
  _, state = state_lib.create(_tuned_model(config), trainer.make_optimizer(config, 4),
                              trainer.trainable_filter(config))
  checkpoints = checkpoint_lib.Checkpoints(tmp_path / "out" / "checkpoints", best_metric=None)
  try:
    with _orbax_disk_full():
      checkpoints.save(4, state._replace(step=np.int32(4)))
      checkpoints.wait()
  finally:
    checkpoints.close()


def _pretraining_on_full_disk(tmp_path):
  """A d_model 32 run resumes from its step-1 checkpoint; saving step 2 finds the disk full."""
  import optax  # pylint: disable=g-import-not-at-top
  from research.train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from research.train import loop  # pylint: disable=g-import-not-at-top
  from research.train import state as state_lib  # pylint: disable=g-import-not-at-top
  _, state = state_lib.create(_small_lm(32), optax.sgd(0.1))
  checkpoints = checkpoint_lib.Checkpoints(tmp_path / "run" / "checkpoints", best_metric=None)
  checkpoints.save(1, state._replace(step=np.int32(1)))
  checkpoints.wait()
  checkpoints.close()
  zeros = {"inputs": np.zeros((1, 2, 8), np.int32), "targets": np.zeros((1, 2, 8), np.int32)}
  batches = types.SimpleNamespace(step_batch=lambda step: zeros)
  with _orbax_disk_full():
    loop.train(_small_lm(32), optax.sgd(0.1), batches,
               loop.Settings(steps=2, checkpoint_every=1, mesh_data=1),
               workdir=tmp_path / "run", show_progress=False)


def _step_1_restores(tmp_path):
  import optax  # pylint: disable=g-import-not-at-top
  from research.train import loop  # pylint: disable=g-import-not-at-top
  _, step = loop.restore(_small_lm(32), optax.sgd(0.1), tmp_path / "run" / "checkpoints")
  assert step == 1, step


def _step_2_restores(tmp_path):
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  config = _finetune_config(tmp_path / "out")
  _, step = trainer.restore(_tuned_model(config), config)
  assert step == 2, step


def _good_export(tmp_path) -> Path:
  from research.finetune import export  # pylint: disable=g-import-not-at-top
  return export.export(_load(_tiny_dir()), tmp_path / "export")


def _export_on_full_disk(target, only: Path | None = None):
  """Writing through `target` finds the disk full; with `only`, just the file of that name."""
  def run(tmp_path):
    from research.finetune import export  # pylint: disable=g-import-not-at-top
    from research.nn import lora  # pylint: disable=g-import-not-at-top
    _good_export(tmp_path)
    (tmp_path / "before.json").write_text(json.dumps(_files(tmp_path / "export")))
    lm = _load(_tiny_dir())
    lora.apply_lora(lm.model, lambda path: True, 2, 4)
    real = pkgutil.resolve_name(target)
    def full(*args, **kwargs):
      if only is None or Path(args[0]).name == only.name:
        _disk_is_full()
      return real(*args, **kwargs)
    with mock.patch(target, side_effect=full):
      export.export(lm, tmp_path / "export")
  return run


def _first_export_on_full_disk(tmp_path):
  from research.finetune import export  # pylint: disable=g-import-not-at-top
  with mock.patch("third_party.hf_checkpoint.save_file", side_effect=_disk_is_full):
    export.export(_load(_tiny_dir()), tmp_path / "export")


def _nothing_left(tmp_path):
  assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


def _files(directory: Path) -> dict:
  return {str(p.relative_to(directory)): p.read_bytes().hex()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def _export_unchanged(tmp_path):
  assert _files(tmp_path / "export") == json.loads((tmp_path / "before.json").read_text())
  left = sorted(p.name for p in tmp_path.iterdir())
  assert left == ["before.json", "export"], left  # no temporary folder left behind


_EXPORT = r"export: no space left on device while writing the export"
DISK_FULL = [
    Case("disk full while saving a checkpoint", _checkpoint_on_full_disk,
         r"out/checkpoints/last: no space left on device while saving step 4; the checkpoint "
         r"of step 2 is intact\.",
         _step_2_restores),
    Case("disk full while a pretraining run saves a checkpoint", _pretraining_on_full_disk,
         r"run/checkpoints/last: no space left on device while saving step 2; the checkpoint "
         r"of step 1 is intact\.", _step_1_restores),
    Case("disk full while writing an export's weights",
         _export_on_full_disk("third_party.hf_checkpoint.save_file"), _EXPORT,
         _export_unchanged),
    Case("disk full while writing a first export", _first_export_on_full_disk,
         r"export: no space left on device while writing the export; no part of it was left "
         r"there\.", _nothing_left),
    Case("disk full while writing an export's config",
         _export_on_full_disk("third_party.hf_checkpoint._write_json"), _EXPORT,
         _export_unchanged),
    Case("disk full while writing an export's tokenizer",
         _export_on_full_disk("research.finetune.export.write_tokenizer"), _EXPORT,
         _export_unchanged),
    Case("disk full while writing an export's GGUF tensors",  # after its header is written
         _export_on_full_disk("gguf.GGUFWriter.write_tensors_to_file"), _EXPORT,
         _export_unchanged),
    Case("disk full while writing an export's Modelfile",
         _export_on_full_disk("research.files.write_text", only=Path("Modelfile")), _EXPORT,
         _export_unchanged),
    Case("disk full while writing an export's adapter",
         _export_on_full_disk("safetensors.numpy.save_file"), _EXPORT, _export_unchanged),
]

CASES = GGUF + HF + TOKENIZER + CONFIG + ADAPTER + CHECKPOINTS + DISK_FULL
