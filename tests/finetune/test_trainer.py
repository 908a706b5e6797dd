"""The finetune config in the training loop's terms: schedule, step count, dtype, cadence."""

import pytest

from research.finetune import config as config_lib
from research.finetune import trainer


def test_schedules_warm_up_then_decay():
  config = config_lib.defaults()
  config.learning_rate, config.warmup_steps = 1.0, 10
  for kind, end in (("linear", 0.0), ("cosine", 0.0), ("constant", 1.0)):
    config.lr_scheduler_type = kind
    schedule = trainer.make_schedule(config, 110)
    assert float(schedule(0)) == 0.0 and float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(110)) == pytest.approx(end, abs=1e-6)


def test_steps_dtype_and_cadence_follow_the_config(monkeypatch):
  monkeypatch.setenv("BOOKFORAI_CPU_BF16", "1")  # as on a device with fast bf16 and fp16
  config = config_lib.defaults()
  config.num_train_epochs, config.logging_steps, config.save_steps = 2.5, 3, 7
  assert trainer.total_steps(config, steps_per_epoch=3) == 8  # ceil(2.5 x 3)
  config.max_steps = 5
  assert trainer.total_steps(config, steps_per_epoch=3) == 5
  config.compute_type = "fp16"
  fp16 = trainer.settings(config, 5, evaluates=True)
  assert (fp16.dtype, fp16.loss_scaling, fp16.eval_every, fp16.checkpoint_every) == (
      "float16", True, 3, 7)  # eval at the logging steps when eval_steps is 0
  config.compute_type, config.eval_steps = "bf16", 4
  bf16 = trainer.settings(config, 5, evaluates=True)
  assert (bf16.dtype, bf16.loss_scaling, bf16.eval_every) == ("bfloat16", False, 4)
  assert trainer.settings(config, 5, evaluates=False).eval_every == 0
