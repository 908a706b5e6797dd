"""The numbers in a claim's `measured` text, for chapter tests that assert the key figure."""

import re

# A number not glued to a word: "ratio 4.87e-07" gives 4.87e-07, "float32" gives nothing.
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def figures(claim) -> list[float]:
  return [float(n) for n in _NUMBER.findall(claim.measured)]
