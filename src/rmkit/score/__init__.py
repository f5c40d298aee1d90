"""rmkit.score: rewards for conversations, pairs and best-of-N rows, on any backend (hf, vllm; Ray over them).

    from rmkit.score import ScorerConfig, build_scorer, score_file
    scorer = build_scorer("smollm2-135m-rm", dtype="float32")        # ScorerConfig's fields as keywords
    score_file("pairs.jsonl", "scored.jsonl", scorer)                  # what `rmkit score` runs

Modules: config (ScorerConfig: the options), factory (build_scorer: the one way to build a scorer), protocol
(Scorer, IdBackend), base (what every backend shares), scorer (hf), vllm_scorer, ray_engine, run (score_file),
options (the CLI flags every command shares), cli (`rmkit score`). The three names are imported when first
used, so importing a module of this package (its config, say) loads nothing else; none of them imports torch.
"""
__all__ = ["ScorerConfig", "build_scorer", "score_file"]
_HOMES = {"ScorerConfig": "rmkit.score.config", "build_scorer": "rmkit.score.factory", "score_file": "rmkit.score.run"}


def __getattr__(name):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(name)
