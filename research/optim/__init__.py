"""The gradient descent chapter: hand-written optax transforms, proven equal to optax.

  from research import optim
  tx = optim.adam(1e-3)                      # a drop-in twin of optax.adam
  tx = optim.sgd(optim.step_decay(0.1, 0.5, every=100), momentum=0.9)

`alias` and `transforms` are the optax-style twins; `notebook` the notebook's own forms;
`schedules` the learning-rate schedules; `sampler` the SGD minibatch sampler.
"""

from research.optim import alias
from research.optim import notebook
from research.optim import sampler
from research.optim import schedules
from research.optim import transforms
from research.optim.alias import adagrad
from research.optim.alias import adam
from research.optim.alias import adamw
from research.optim.alias import rmsprop
from research.optim.alias import sgd
from research.optim.sampler import MinibatchSampler
from research.optim.schedules import linear
from research.optim.schedules import step_decay
from research.optim.schedules import warmup_cosine
from research.optim.transforms import add_decayed_weights
from research.optim.transforms import safe_increment
from research.optim.transforms import scale_by_adam
from research.optim.transforms import scale_by_learning_rate
from research.optim.transforms import scale_by_rms
from research.optim.transforms import scale_by_rss
from research.optim.transforms import scale_by_stddev
from research.optim.transforms import trace
