"""A real contamination case: RewardBench's own sources mixed into training data.

The mix: the five LLMBar sets (= RewardBench's llmbar-* subsets), LLMBar's processed MT-Bench human
judgments, XSTest completion pairs, HH-RLHF helpful/harmless test pairs and an UltraFeedback sample,
decontaminated against RewardBench (filtered) with the default rule (shared 13-gram, first user turn).

The expected counts were written after reading every flagged pair (see bench/results/decontam.md):
- every LLMBar / XSTest pair is a RewardBench prompt verbatim; exactly those with >= 13 tokens are
  flagged (a shorter prompt holds no 13-gram), e.g. LLMBar-Natural 84 of 100;
- MT-Bench: 128 pairs match RewardBench's mt-bench-* prompts, 2 more a near-verbatim
  llmbar-natural prompt (LLMBar also drew from MT-Bench);
- HH-RLHF helpful-base: 8 verbatim AlpacaEval prompts (AlpacaEval drew from HH helpful-base) and 60
  prompts sharing AlpacaEval's "I like to host guests at my home ..." template text;
- UltraFeedback: 1 verbatim llmbar-adver-neighbor prompt, 3 list literals such as
  "[ ' a ' , ' b ' , ' c ' ]" shared with hep-* prompts (gone with tokens="words").
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmkit.data import PreferencePair, load_pairs
from rmkit.data.sources.xstest import load_xstest_pairs
from rmkit.decontam import DecontamConfig, decontaminate
from rmkit.decontam.ngrams import tokenize

LLMBAR = ["LLMBar_Natural", "LLMBar_Adversarial_Neighbor", "LLMBar_Adversarial_GPTInst",
          "LLMBar_Adversarial_GPTOut", "LLMBar_Adversarial_Manual"]
EXPECTED_REMOVED = {"LLMBar_Natural": 84, "LLMBar_Adversarial_Neighbor": 69,
                    "LLMBar_Adversarial_GPTInst": 60, "LLMBar_Adversarial_GPTOut": 28,
                    "LLMBar_Adversarial_Manual": 35, "Processed_MT-Bench": 130, "xstest": 41,
                    "hh-rlhf": 68, "ultrafeedback": 4}


def build_mix(data: Path) -> list[PreferencePair]:
    pairs = []
    for name in LLMBAR + ["Processed_MT-Bench"]:
        for i, p in enumerate(load_pairs(data / "llmbar" / f"{name}.json")):
            p.id, p.source = f"{name}:{i}", name
            pairs.append(p)
    pairs += load_xstest_pairs(data / "xstest")
    for split in ("helpful-base", "harmless-base"):
        for p in load_pairs(data / "hh-rlhf" / split / "test.jsonl.gz", errors="skip"):
            p.id = f"{split}:{p.id}"
            pairs.append(p)
    pairs += load_pairs(data / "ultrafeedback-binarized-sample" / "train_clean.jsonl.gz",
                        errors="skip")
    return pairs


@pytest.fixture(scope="module")
def mix(shared_data, tmp_path_factory):
    pairs = build_mix(shared_data)
    path = tmp_path_factory.mktemp("mix") / "mix.jsonl"
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs), encoding="utf-8")
    return pairs, path


def _run(path, tmp, monkeypatch, shared_data, **kw):
    monkeypatch.setenv("RMKIT_DATA_DIR", str(shared_data))
    cfg = DecontamConfig(train=str(path), against=["rewardbench"], output=str(tmp / "clean.jsonl"),
                         removed=str(tmp / "removed.jsonl"), workers=2, **kw)
    report = decontaminate(cfg)
    removed = [json.loads(line) for line in open(tmp / "removed.jsonl", encoding="utf-8")]
    return report, removed


def test_mix_against_rewardbench(mix, tmp_path, monkeypatch, shared_data):
    pairs, path = mix
    report, removed = _run(path, tmp_path, monkeypatch, shared_data)
    assert report.benchmark_docs == 2985
    assert {s: r["removed"] for s, r in report.per_source().items()} == EXPECTED_REMOVED
    assert report.kept + report.removed == len(pairs) == 6528  # HH-RLHF and UltraFeedback rows with an empty reply included
    flagged = {r["id"] for r in removed}
    for p in pairs:  # LLMBar = RewardBench verbatim: flagged exactly when a 13-gram exists
        if p.source.startswith("LLMBar"):
            assert (p.id in flagged) == (len(tokenize(p.prompt[0].content)) >= 13), p.id
    by_id = {r["id"]: r for r in removed}
    natural = by_id["LLMBar_Natural:0"]
    assert {"benchmark": "rewardbench", "id": natural["matched"][0]["id"],
            "subset": "llmbar-natural"} in natural["matched"]
    assert natural["chosen"] and natural["source"] == "LLMBar_Natural" and natural["matched_ngrams"]
    mt = [{m["subset"] for m in r["matched"]} for r in removed if r["source"] == "Processed_MT-Bench"]
    # 128 hit RewardBench's mt-bench-*; 2 ("How many integers ... |x + 5| < 10") only llmbar-natural,
    # which drew prompts from MT-Bench too (as AlpacaEval shares the Hawaii blog-post prompt)
    assert sum(1 for s in mt if any(x.startswith("mt-bench") for x in s)) == 128
    assert set().union(*mt) == {"mt-bench-easy", "mt-bench-med", "mt-bench-hard", "llmbar-natural",
                                "alpacaeval-easy", "alpacaeval-hard", "alpacaeval-length"}
    hh = [r for r in removed if r["source"] == "hh-rlhf"]
    assert all(m["subset"].startswith("alpacaeval") for r in hh for m in r["matched"])
    kept = sum(1 for _ in open(tmp_path / "clean.jsonl", encoding="utf-8"))
    assert kept == report.kept == 6528 - sum(EXPECTED_REMOVED.values())


def test_words_tokens_drop_the_punctuation_only_matches(mix, tmp_path, monkeypatch, shared_data):
    _, path = mix
    report, removed = _run(path, tmp_path, monkeypatch, shared_data, tokens="words")
    uf = sorted(r["id"] for r in removed if r["source"] == "ultrafeedback")
    assert uf == ["ultrafeedback:556"]  # the verbatim llmbar-adver-neighbor prompt only


def test_flagged_set_equals_sklearn_reference(mix, shared_data):
    """The benchmark's reference method (CountVectorizer, dot product > 0) with rmkit's tokenizer."""
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    from rmkit.decontam.index import NgramIndex
    from rmkit.decontam.ngrams import pair_texts, tokenizer

    pairs, _ = mix
    bench = load_pairs(shared_data / "reward-bench" / "filtered.jsonl.gz")
    vec = sklearn.CountVectorizer(tokenizer=tokenizer("punct"), token_pattern=None,
                                  lowercase=False, ngram_range=(13, 13))
    xb = vec.fit_transform([pair_texts(p)[0] for p in bench])
    xt = vec.transform([pair_texts(p)[0] for p in pairs])
    ref = set(((xt @ xb.T).tocsr().getnnz(axis=1) > 0).nonzero()[0].tolist())
    ours = set(NgramIndex.build(bench).match([pair_texts(p) for p in pairs]))
    assert ours == ref and len(ref) == sum(EXPECTED_REMOVED.values())


def test_prompt_only_reading_flags_the_same_pairs(mix, tmp_path, monkeypatch, shared_data):
    _, path = mix
    report, removed = _run(path, tmp_path, monkeypatch, shared_data, check_rows=False)
    assert {s: r["removed"] for s, r in report.per_source().items()} == EXPECTED_REMOVED
    assert all(r["matched"] and r["chosen"] and r["rejected"] for r in removed)
