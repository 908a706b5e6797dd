"""Trains a GPT on text: python -m experiments.train_lm --config=experiments/configs/train_lm.py

Prints the samples of each sampler (when config.samples) and, last,
`eval_loss=<float> ms_per_iter=<median> tokens_per_s=<float>`.
"""

import jax
from absl import flags

from experiments import script
from research import runs
from research.generate import decode
from research.train import distributed
from research.train import flops
from research.train import lm

_CONFIG = script.config_flag("train_lm")
_WORKDIR = flags.DEFINE_string("workdir", "runs/train_lm", "Where results are written.")


def main(argv):
  del argv
  distributed.initialize_if_multihost()
  config = _CONFIG.value
  runs.seed_everything(config.seed)
  run = lm.train_lm(config, _WORKDIR.value)
  result = run.result
  if config.get("samples", 0):
    for name, text in decode.sample_each(run.result.model, run.tokenizer, config.prompt,
                                         config.max_new_tokens,
                                         jax.random.key(config.seed)).items():
      print(f"--- {name} ---\n{text}\n")
  if config.get("full_val_eval", False):
    print(f"full validation loss {run.full_eval_loss:.4f} (every non-overlapping window)")
  peak = flops.Peak(result.peak_flops, result.peak_machine or "the machine given")
  print(peak.describe(result.mfu) + " (fp32 matmul peak)")
  print(f"eval_loss={run.eval_loss:.4f} ms_per_iter={result.ms_per_iter:.2f} "
        f"tokens_per_s={result.tokens_per_s:.0f}")


if __name__ == "__main__":
  script.run(main)
