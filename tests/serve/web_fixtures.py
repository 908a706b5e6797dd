"""What the web UI tests share: a tiny model that answers "[1] [1] ...", a tiny SFT set over
its vocabulary, and the app built around them with a stand-in embedder.

The model's final norm has a zero scale, so every logit is 0 and greedy decoding picks token
0, which is the word "[1]": a knowledge-base answer always cites passage 1, which is what the
page's highlighting needs to be seen working. (Its loss cannot move, so the SFT job tests check
that the curve gains points, not that it falls.) The DPO job trains the same model with its
scale kept (`write_citing_model(path, zero_logits=False)`), whose preferences can move.
"""

import json
import os
from pathlib import Path

import tokenizers
from flax import nnx

from research import pretrained
from research.finetune import export
from research.nn import config as config_lib
from research.nn import transformer
from research.serve.settings import Settings
from research.text.pretrained import PretrainedTokenizer
from tests.rag.conftest import WordEmbedder

VOCAB = 64
# w1 ends a turn; w2, w3, w4 open a system, user and assistant turn; w63 pads.
TEMPLATE = ("{% for m in messages %}{{ {'system': 'w2', 'user': 'w3'}.get(m['role'], 'w4') }} "
            "{{ m['content'] }} w1 {% endfor %}{% if add_generation_prompt %}w4 {% endif %}")
DOCUMENT = ("Adam keeps two moving averages of the gradient.\n\nIts default betas are 0.9 and "
            "0.999, and its epsilon is 1e-8.\n\nWeight decay in AdamW is decoupled from the "
            "gradient step.")
QUESTION = "What are the default betas of Adam?"
# A few optimizer steps of the tiny set: enough for a curve, quick on a loaded 2-core CPU.
TINY_JOB = {"dataset": "tiny", "max_steps": 3, "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1, "cutoff_len": 64, "learning_rate": 1e-3,
            "logging_steps": 1, "lora_rank": 4, "lora_alpha": 8}
# A learning rate at which two DPO updates move the preference visibly (the loss below ln 2).
TINY_DPO_JOB = {**TINY_JOB, "stage": "dpo", "dataset": "tiny_prefs", "pref_beta": 0.2,
                "learning_rate": 5e-2}


def write_citing_model(path, zero_logits=True) -> Path:
  """An HF model directory whose greedy answer is "[1] [1] ..."; with zero_logits=False the
  same random model with its final norm kept, whose logits depend on the input."""
  config = config_lib.llama(vocab_size=VOCAB, num_layers=2, width=32, num_heads=4,
                            num_kv_heads=2, ffn_width=48, max_length=512, init_std=0.2)
  model = transformer.Transformer(config, rngs=nnx.Rngs(0))
  if zero_logits:
    model.final_norm.scale[...] = 0.0  # every logit 0: argmax is token 0, "[1]"
  vocab = {"[1]": 0, **{f"w{i}": i for i in range(1, VOCAB)}}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w63"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
  tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
  tokenizer = PretrainedTokenizer(tok, eos_token="w1", pad_token="w63", template=TEMPLATE)
  return export.export(pretrained.PretrainedLM(model, tokenizer, config, "random"), path)


def write_tiny_data(path) -> Path:
  """dataset_info.json with an alpaca SFT set "tiny" and a preference set "tiny_prefs"."""
  path = Path(path)
  path.mkdir(parents=True, exist_ok=True)
  words = lambda *ids: " ".join(f"w{i}" for i in ids)
  sft = [{"instruction": words(10 + i % 5, 20), "input": "", "output": words(40 + i % 5, 41)}
         for i in range(8)]
  prefs = [{"instruction": words(12 + i % 3), "chosen": words(50 + i % 3),
            "rejected": words(53 + i % 3)} for i in range(4)]
  (path / "tiny.json").write_text(json.dumps(sft))
  (path / "prefs.json").write_text(json.dumps(prefs))
  (path / "dataset_info.json").write_text(json.dumps({
      "tiny": {"file_name": "tiny.json"},
      "tiny_prefs": {"file_name": "prefs.json", "ranking": True}}))
  return path


def settings_for(model_dir, data_dir, work_dir, **overrides) -> Settings:
  # TestClient sends "Host: testserver", a name the Host allow-list must be told about.
  return Settings(model=str(model_dir), data_dir=Path(data_dir), work_dir=Path(work_dir),
                  max_new_tokens=8, allowed_hosts=("testserver",), **overrides)


def make_app(settings: Settings, embedder=None):
  """The real app (research.serve.app) with a stand-in embedder."""
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve import services as services_lib  # pylint: disable=g-import-not-at-top
  services = services_lib.Services(settings, embedder=embedder or WordEmbedder())
  return app_lib.create_app(settings, services)



CHROMIUM = os.environ.get("BOOKFORAI_CHROMIUM", "/usr/bin/chromium")
NO_BROWSER = (f"the browser tests need Debian's Chromium at {CHROMIUM}: run "
              "`apt-get install -y chromium` (see BUILD.md).")


