import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from research import files
from research import tour

REPO = Path(__file__).resolve().parents[1]


def test_claim_verdicts_come_from_the_measurement():
  assert tour.Claim.at_most("s", "max", 0.25, 0.25).holds
  assert not tour.Claim.at_most("s", "max", 0.2501, 0.25).holds
  assert tour.Claim.at_least("s", "acc", 1.0, 0.99).holds
  assert not tour.Claim.within("s", "ratio", 2.5, 0.5, 2.0).holds
  assert tour.Claim.close_to("s", "b", 1.0 + 1e-9, 1.0, 1e-6).holds
  assert tour.Claim.at_most("s", "max", 0.25, 0.25, fmt="{:.4f}").measured == "max 0.2500"


def _good(ctx):
  fig, ax = plt.subplots()
  ax.plot([0, 1])
  files.save_figure(fig, ctx.figure_path("line.png"))
  return [tour.Claim.at_most("x <= 1", "x", 0.5, 1.0, figure="line.png"),
          tour.Claim.at_most("y <= 1", "y", 2.0, 1.0)]


def _broken(ctx):
  raise RuntimeError("this chapter breaks")


def test_a_failing_chapter_is_reported_and_the_others_still_run(tmp_path):
  chapters = [tour.Chapter("broken", "Broken", 1, _broken), tour.Chapter("good", "Good", 2, _good)]
  results = tour.run_chapters(chapters, tmp_path, quick=True)
  assert [r.failed for r in results] == [True, False]
  assert "this chapter breaks" in results[0].error
  md_path, html_path = tour.write_report(results, tmp_path, quick=True)
  md = md_path.read_text()
  assert "**FAILED**" in md and "RuntimeError" in md
  assert "x <= 1 — measured x 0.5 — **holds**" in md
  assert "y <= 1 — measured y 2 — **does not hold**" in md
  assert "](good/line.png)" in md
  assert "data:image/png;base64," in html_path.read_text()


def test_registering_two_chapters_under_one_name_is_an_error():
  tour.chapter("test-dup", "Dup", 99)(_good)
  with pytest.raises(ValueError, match="registered twice"):
    tour.chapter("test-dup", "Dup", 99)(_broken)
  with pytest.raises(ValueError, match="unknown chapters"):
    tour.registered(["no-such-chapter"])


def test_tour_command_writes_the_report(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.tour", "--quick", "--only=warmup", f"--out={tmp_path}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "3/3 claims hold" in proc.stdout
  report = (tmp_path / "report.md").read_text()
  assert "## Warm-up: derivatives" in report
  assert (tmp_path / "report.html").exists()
