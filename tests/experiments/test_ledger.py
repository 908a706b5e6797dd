"""The equivalence ledger: rows catch a wrong implementation, skip a missing reference, and
render in the tour report. No SmolLM2 here: only the cheap rows run."""

import jax.numpy as jnp
import optax
import pytest

from experiments import ledger
from experiments.ledger import losses as ledger_losses
from experiments.ledger import optimizers as ledger_optimizers
from research import optim
from research import tour


@pytest.fixture()
def ctx(tmp_path):
  return ledger.Context(tmp_path, quick=True)


def _row(name, measure, tolerance=ledger.Tolerance(rtol=1e-6), needs=()):
  return ledger.Row(name, "ours", "theirs", tolerance, measure, needs=needs)


def test_an_optimizer_row_holds_and_a_wrong_optimizer_does_not(ctx):
  good = ledger.measure(ledger.rows(["adam"])[0], ctx)
  assert good.holds and good.used <= 1.0
  wrong = optim.adam(1e-3, b2=0.99)  # a second moment that forgets too fast
  bad = ledger.measure(_row("bad-adam", lambda c: ledger_optimizers.alias_parity(
      wrong, optax.adam(1e-3), c)), ctx)
  assert bad.status == "does not hold" and bad.used > 1.0
  assert "outside tolerance" in bad.note


@pytest.mark.parametrize("name", ["cross-entropy", "sequence-logps", "dpo-loss", "graph-engine",
                                  "custom-ops", "preference-losses", "gae", "grpo-loss"])
def test_cheap_rows_hold(ctx, name):
  assert ledger.measure(ledger.rows([name])[0], ctx).holds


def test_a_loss_row_catches_an_unweighted_cross_entropy(ctx):
  def ignores_weights(logits, targets, weights=None):
    del weights
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  result = ledger.measure(_row("bad-ce", lambda c: ledger_losses.cross_entropy_parity(
      ignores_weights), {"mean": ledger.Tolerance(rtol=1e-6),
                         "weighted": ledger.Tolerance(rtol=1e-6)}), ctx)
  assert result.status == "does not hold" and "weighted" in result.note


def test_nan_and_shape_mismatch_never_hold():
  tol = ledger.Tolerance(rtol=1e-3)
  assert not ledger.compare(jnp.array([jnp.nan]), jnp.array([1.0]), tol).holds
  assert not ledger.compare(jnp.ones(3), jnp.ones(4), tol).holds
  assert ledger.compare(jnp.ones(3), jnp.ones(3), ledger.Tolerance()).holds


def test_missing_reference_is_skipped_and_a_raising_row_is_an_error(ctx):
  skipped = ledger.measure(_row("needs", lambda c: (1.0, 1.0), needs=("no_such_module_x",)), ctx)
  assert skipped.status == "skipped" and "no_such_module_x" in skipped.note
  broken = ledger.measure(_row("raises", lambda c: 1 / 0), ctx)
  assert broken.status == "error" and "ZeroDivisionError" in broken.note
  claim = ledger.claim([skipped, broken])
  assert not claim.holds and "1 errors, 1 skipped" in claim.measured


def test_the_table_renders_in_the_tour_report(tmp_path, ctx):
  results = [ledger.measure(ledger.rows(["cross-entropy"])[0], ctx),
             ledger.measure(_row("bad|pipe", lambda c: (1.0, 2.0)), ctx)]
  table = ledger.table(results)

  def chapter(tctx):
    tctx.add_table(table)
    return [ledger.claim(results)]

  run = tour.run_chapters([tour.Chapter("ledger", "Ledger", 1, chapter)], tmp_path, quick=True)
  md_path, html_path = tour.write_report(run, tmp_path, quick=True)
  md = md_path.read_text()
  assert "| row | component | reference | tolerance |" in md
  assert "`python -m experiments.ledger --row=cross-entropy`" in md
  assert "| bad\\|pipe |" in md and "does not hold" in md
  assert "1/2 rows hold" in md
  page = html_path.read_text()
  assert "<table" in page and "<code>python -m experiments.ledger --row=cross-entropy</code>" in page
