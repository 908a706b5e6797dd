"""lm.full_validation_loss against the loss written out window by window."""

import numpy as np
import optax

from research.train import lm
from tests.train import test_loop


def test_full_validation_loss_is_the_mean_over_every_non_overlapping_window():
  val = test_loop.windows(batch_size=4, context_length=16, seed=1)
  result = lm.pretrain(test_loop.tiny_model(), test_loop.train_config(steps=20),
                       test_loop.windows(), show_progress=False)
  ids = np.asarray(val.tokens)
  count = (len(ids) - 1) // 16 // 4 * 4  # whole batches of 4 windows, stride 16
  starts = np.arange(count) * 16
  inputs = np.stack([ids[s:s + 16] for s in starts]).astype(np.int32)
  targets = np.stack([ids[s + 1:s + 17] for s in starts]).astype(np.int32)
  logits_NxLxV, _ = result.model(inputs)
  # loss = mean over windows and positions of -log softmax(logits)[target]
  expected = optax.softmax_cross_entropy_with_integer_labels(logits_NxLxV, targets).mean()
  np.testing.assert_allclose(lm.full_validation_loss(result, val), expected, rtol=1e-5)
