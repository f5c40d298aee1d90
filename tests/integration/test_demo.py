"""`make demo` end to end on a tiny model (the real demo runs SmolLM2-135M for ~15 minutes): every stage
runs on the shared real data, prints its tables and the Jane-apples rewards, and writes the loss curve."""
import json

import pytest

pytestmark = pytest.mark.slow  # the demo end to end: `pytest -m 'not slow'` skips it, `make test` runs it

import rmkit.demo as demo


@pytest.mark.data
def test_demo_runs_end_to_end_on_a_tiny_model(tiny_llama, shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RMKIT_DATA_DIR", str(shared_data))
    monkeypatch.setattr(demo, "default_model", lambda: (tiny_llama, False))
    report = demo.main(["--rewardbench", "12", "--heldout", "10", "--train-pairs", "8", "--epochs", "2",
                        "--train-minutes", "60", "--n-boot", "50", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "[7/7] Summary" in text and "default reward model is UNTRAINED" in text
    assert "reward, response 1 (right: 3 apples each)" in text and "P(response 1 preferred)" in text
    assert "Chat Hard" in text and "length baseline" in text
    assert (tmp_path / "finetune" / "loss_curve.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "demo_results.json").read_text())
    assert set(saved["rows"]) == {"length baseline (longer wins)", "default (untrained)", "after the demo fine-tune"}
    assert saved["rows"]["default (untrained)"]["heldout"]["n"] == 10
    assert saved["rows"]["default (untrained)"]["rewardbench"]["n_pairs"] == 12
    assert len(report["finetune"]["history"]) == 4  # 8 pairs / 4 per step x 2 epochs
    right, wrong = report["jane_apples"]["default (untrained)"]["right"], report["jane_apples"]["default (untrained)"]["wrong"]
    assert right != wrong


@pytest.mark.data
def test_demo_with_a_shipped_default_compares_it_with_the_backbone_and_the_length_baseline(
        tiny_llama, shared_data, tmp_path, monkeypatch, capsys):
    """With a trained default in the package the demo also scores the untrained backbone, tests the default
    against it and against the length baseline on the same pairs (paired bootstrap), and says what it can do."""
    monkeypatch.setenv("RMKIT_DATA_DIR", str(shared_data))
    monkeypatch.setattr(demo, "default_model", lambda: (tiny_llama, True))
    monkeypatch.setattr(demo, "backbone", lambda: tiny_llama)
    report = demo.main(["--rewardbench", "0", "--heldout", "10", "--train-pairs", "4", "--epochs", "1",
                        "--train-minutes", "60", "--n-boot", "50", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    name = f"default ({demo.DEFAULT})"
    assert set(report["rows"]) == {"length baseline (longer wins)", "untrained backbone", name,
                                   "after the demo fine-tune"}
    vs = report["rows"][name]["paired_vs"]
    assert vs["untrained backbone"]["diff"] == 0.0  # here the "default" is the backbone itself
    assert f"{demo.DEFAULT} vs length baseline (longer wins) on these 10 held-out pairs" in text
    assert "It passed the bar" in text and "What it cannot" in text and "UNTRAINED" not in text


def test_jane_apples_text_is_the_model_card_example():
    assert demo.PROMPT.startswith("Jane has 12 apples. She gives 4 apples to her friend Mark")
    assert "(3 people in total). 9 ÷ 3 = 3 apples each" in demo.RESPONSE_RIGHT
    assert "among her 2 siblings (2 people in total). 9 ÷ 2 = 4.5" in demo.RESPONSE_WRONG
