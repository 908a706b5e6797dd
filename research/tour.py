"""The tour: chapters register themselves; each returns claims of the notebook with a
measured value, a verdict computed from it, and a figure. The report collects them.

  @chapter("activations", "Activations", order=3)
  def run(ctx: Context) -> list[Claim]:
    ...
    return [Claim.at_most("sigmoid'(x) <= 0.25", "max", m, 0.25, figure=png)]

A chapter may also hand the report a table (`ctx.add_table(Table(...))`), as the equivalence
ledger does.
"""

import base64
import dataclasses
import html
import time
import traceback
from pathlib import Path
from typing import Callable

from research import files


@dataclasses.dataclass(frozen=True)
class Claim:
  statement: str         # the notebook's claim, e.g. "sigmoid'(x) <= 0.25"
  measured: str          # what we measured, e.g. "max 0.2500"
  holds: bool            # the verdict, computed from the measurement
  figure: str | None = None  # PNG path, relative to the chapter's folder or absolute

  @property
  def verdict(self) -> str:
    return "holds" if self.holds else "does not hold"

  @classmethod
  def at_most(cls, statement, label, value, bound, fmt="{:.4g}", figure=None):
    return cls(statement, f"{label} {fmt.format(value)}", bool(value <= bound), _str(figure))

  @classmethod
  def at_least(cls, statement, label, value, bound, fmt="{:.4g}", figure=None):
    return cls(statement, f"{label} {fmt.format(value)}", bool(value >= bound), _str(figure))

  @classmethod
  def within(cls, statement, label, value, low, high, fmt="{:.4g}", figure=None):
    return cls(statement, f"{label} {fmt.format(value)}", bool(low <= value <= high),
               _str(figure))

  @classmethod
  def close_to(cls, statement, label, value, target, tol, fmt="{:.6g}", figure=None):
    measured = f"{label} {fmt.format(value)} (target {fmt.format(target)}, tol {tol:g})"
    return cls(statement, measured, bool(abs(value - target) <= tol), _str(figure))


def _str(figure):
  return None if figure is None else str(figure)


@dataclasses.dataclass(frozen=True)
class Table:
  """A table for the report: one string per cell; cells of `code` columns print as code."""
  columns: tuple[str, ...]
  rows: tuple[tuple[str, ...], ...]
  code: frozenset[str] = frozenset()
  caption: str = ""

  def __post_init__(self):
    for row in self.rows:
      if len(row) != len(self.columns):
        raise ValueError(f"table row {row!r} has {len(row)} cells for {len(self.columns)} "
                         f"columns {self.columns!r}.")

  def markdown(self) -> list[str]:
    def cell(column, text):
      text = text.replace("|", "\\|").replace("\n", " ")
      return f"`{text}`" if column in self.code and text else text
    lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
    lines += ["| " + " | ".join(cell(c, t) for c, t in zip(self.columns, row)) + " |"
              for row in self.rows]
    return lines + (["", self.caption] if self.caption else [])

  def html(self) -> str:
    def cell(column, text):
      text = html.escape(text)
      return f"<td>{f'<code>{text}</code>' if column in self.code and text else text}</td>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
    body = "".join("<tr>" + "".join(cell(c, t) for c, t in zip(self.columns, row)) + "</tr>"
                   for row in self.rows)
    caption = f"<p>{html.escape(self.caption)}</p>" if self.caption else ""
    return (f"<table border='1' cellpadding='3' style='border-collapse:collapse;"
            f"font-size:small'><tr>{head}</tr>{body}</table>{caption}")


@dataclasses.dataclass
class Context:
  """What a chapter gets: where to write, how hard to try, and a seed."""
  out_dir: Path
  quick: bool = False
  seed: int = 0
  tables: list[Table] = dataclasses.field(default_factory=list)

  def figure_path(self, name: str) -> Path:
    return self.out_dir / name

  def log(self, message: str) -> None:
    print(f"  {message}", flush=True)

  def add_table(self, table: Table) -> None:
    self.tables.append(table)


@dataclasses.dataclass(frozen=True)
class Chapter:
  name: str
  title: str
  order: float
  run: Callable[[Context], list[Claim]]


@dataclasses.dataclass
class ChapterResult:
  chapter: Chapter
  claims: list[Claim]
  seconds: float
  error: str | None = None  # traceback text when the chapter failed
  tables: list[Table] = dataclasses.field(default_factory=list)

  @property
  def failed(self) -> bool:
    return self.error is not None


_REGISTRY: dict[str, Chapter] = {}


def chapter(name: str, title: str, order: float):
  """Registers `run(ctx) -> list[Claim]` as a chapter of the tour."""
  def register(run):
    if name in _REGISTRY and _REGISTRY[name].run is not run:
      raise ValueError(f"tour chapter {name!r} is registered twice.")
    _REGISTRY[name] = Chapter(name, title, order, run)
    return run
  return register


def experiment_chapter(name: str, title: str, order: float, get_config, run_experiment,
                       pass_log: bool = False, pass_table: bool = False):
  """Registers the usual chapter: `run_experiment(config, out_dir)` on `get_config`'s config
  (its `quick` preset in quick mode) with the tour's seed; pass_log adds log=ctx.log,
  pass_table add_table=ctx.add_table (a table for the report)."""
  def run(ctx: Context) -> list[Claim]:
    config = get_config("quick" if ctx.quick else None)
    config.seed = ctx.seed
    extra = {}
    if pass_log:
      extra["log"] = ctx.log
    if pass_table:
      extra["add_table"] = ctx.add_table
    return run_experiment(config, ctx.out_dir, **extra)
  return chapter(name, title, order)(run)


def registered(only: list[str] | None = None) -> list[Chapter]:
  chapters = sorted(_REGISTRY.values(), key=lambda c: (c.order, c.name))
  if only:
    unknown = sorted(set(only) - set(_REGISTRY))
    if unknown:
      raise ValueError(f"--only names unknown chapters {unknown}; known: {sorted(_REGISTRY)}.")
    chapters = [c for c in chapters if c.name in only]
  return chapters


def run_chapters(chapters: list[Chapter], out_dir, quick: bool, seed: int = 0):
  """Runs each chapter in turn; one that raises is recorded as failed, the rest go on."""
  results = []
  for i, chap in enumerate(chapters, 1):
    print(f"[{i}/{len(chapters)}] {chap.title} ...", flush=True)
    ctx = Context(Path(out_dir) / chap.name, quick=quick, seed=seed)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
      claims = list(chap.run(ctx))
      error = None
    except Exception:  # pylint: disable=broad-except
      claims, error = [], traceback.format_exc()
    seconds = time.time() - start
    results.append(ChapterResult(chap, claims, seconds, error, list(ctx.tables)))
    status = "FAILED" if error else f"{sum(c.holds for c in claims)}/{len(claims)} claims hold"
    print(f"[{i}/{len(chapters)}] {chap.title}: {status} ({seconds:.1f} s)", flush=True)
    if error:
      print(error, flush=True)
  return results


def _figure_file(result: ChapterResult, out_dir: Path, claim: Claim) -> Path | None:
  if not claim.figure:
    return None
  path = Path(claim.figure)
  return path if path.is_absolute() else out_dir / result.chapter.name / path


def write_report(results: list[ChapterResult], out_dir, quick: bool) -> tuple[Path, Path]:
  """Writes report.md (figures linked) and report.html (figures embedded)."""
  out_dir = Path(out_dir)
  mode = "quick" if quick else "full"
  md = [f"# BookForAI tour ({mode} mode)", ""]
  md += ["| chapter | claims holding | time | status |", "|---|---|---|---|"]
  for r in results:
    held = f"{sum(c.holds for c in r.claims)}/{len(r.claims)}"
    md.append(f"| {r.chapter.title} | {held} | {r.seconds:.1f} s | "
              f"{'FAILED' if r.failed else 'ok'} |")
  body = [f"<h1>BookForAI tour ({mode} mode)</h1>"]
  for r in results:
    md += ["", f"## {r.chapter.title}", ""]
    body.append(f"<h2>{html.escape(r.chapter.title)}</h2>")
    if r.failed:
      md += ["**FAILED**", "", "```", r.error.rstrip(), "```"]
      body.append(f"<p><b>FAILED</b></p><pre>{html.escape(r.error)}</pre>")
    for table in r.tables:
      md += table.markdown() + [""]
      body.append(table.html())
    for claim in r.claims:
      md.append(f"- {claim.statement} — measured {claim.measured} — **{claim.verdict}**")
      body.append(f"<p>{html.escape(claim.statement)} — measured "
                  f"{html.escape(claim.measured)} — <b>{claim.verdict}</b></p>")
      figure = _figure_file(r, out_dir, claim)
      if figure is not None and figure.exists():
        rel = figure.relative_to(out_dir) if figure.is_relative_to(out_dir) else figure
        md.append(f"\n  ![{claim.statement}]({rel})\n")
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        body.append(f'<img alt="{html.escape(claim.statement)}" style="max-width:720px" '
                    f'src="data:image/png;base64,{data}">')
  md_path = files.write_text(out_dir / "report.md", "\n".join(md) + "\n")
  page = ("<!doctype html><html><head><meta charset='utf-8'><title>BookForAI tour</title>"
          "</head><body style='font-family:sans-serif;max-width:900px;margin:auto'>"
          + "\n".join(body) + "</body></html>\n")
  html_path = files.write_text(out_dir / "report.html", page)
  return md_path, html_path


def run_and_print(run_experiment, config, workdir) -> list[Claim]:
  """What a chapter's own script does: seed, run folder, the experiment, each claim logged
  to metrics.jsonl and printed with its verdict."""
  from research import runs  # pylint: disable=g-import-not-at-top
  runs.seed_everything(config.seed)
  with runs.Run(workdir, config) as run:
    claims = run_experiment(config, run.dir)
    for step, claim in enumerate(claims):
      run.log(step, holds=float(claim.holds))
      print(f"{claim.statement} — measured {claim.measured} — {claim.verdict}")
  return claims
