"""Bad-input cases (see corpus.py)."""

CASES = []
