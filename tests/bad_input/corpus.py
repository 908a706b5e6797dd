r"""The bad-input corpus: each case writes one malformed input under a fresh folder, feeds it
to the code a user's command runs, and says which sentence must come back.

  Case("dataset_info trailing brace", run=..., expect=r"dataset_info\.json.*line 4",
       intact=...)

`run(tmp_path)` must raise one of experiments.script.USER_ERRORS (what a script turns into
its sentence alone and exit status 2); `expect` is a regex the sentence must match (it names
the file, line or field); `intact(tmp_path)`, when given, checks that what was there before
(a checkpoint, an export, a knowledge base) is whole and unchanged.
"""

import dataclasses
from pathlib import Path
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  run: Callable[[Path], object]
  expect: str
  intact: Callable[[Path], None] | None = None
