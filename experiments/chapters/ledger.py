"""The equivalence ledger as the tour's last chapter: every component against its trusted
reference, as a table in the report (experiments/ledger)."""

from experiments import ledger
from research import tour


@tour.chapter("ledger", "Equivalence ledger: each component against its reference", order=10)
def chapter(ctx: tour.Context) -> list[tour.Claim]:
  results = ledger.run(quick=ctx.quick, reference_cache=ledger.default_cache(), log=ctx.log)
  ctx.add_table(ledger.table(results))
  return [ledger.claim(results)]
