"""The report: markdown, valid PNGs, one self-contained HTML page."""
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from rmkit.evaluate.report import write_report
from rmkit.evaluate.rmbench import evaluate_rmbench, load_rmbench
from rmkit.score.baselines import LengthScorer

FIX = Path(__file__).parents[1] / "fixtures" / "eval"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results():
    return evaluate_rmbench(LengthScorer(), load_rmbench(FIX / "rmbench" / "sample.json"), n_boot=100)


def test_report_files_are_valid(results, tmp_path):
    paths = write_report(results, tmp_path / "rep")
    pngs = {k: p for k, p in paths.items() if p.suffix == ".png"}
    assert set(pngs) == {"sections", "rewards", "reward_vs_length", "length_buckets"}
    for p in pngs.values():
        assert p.read_bytes()[:8] == PNG
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    md = paths["summary"].read_text()
    assert "**Score 33.3**" in md and "| chat | 50.0 |" in md and "Length diagnostics" in md
    assert "| hard | 16.7 | [" in md and "| level | overall | 95% CI | chat | math | safety |" in md
    html = paths["html"].read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert "sections.png" not in html and "<table>" in html
