"""rmkit: reward models the Skywork way. curate → decontaminate → train → evaluate → score / serve.

`from rmkit import RewardScorer` (or `build_scorer`, any backend) imports torch lazily, so the data stages stay torch-free.
"""
__version__ = "0.1.0"


def __getattr__(name):
    if name == "RewardScorer":
        from rmkit.score.scorer import RewardScorer

        return RewardScorer
    if name == "build_scorer":
        from rmkit.score.factory import build_scorer

        return build_scorer
    if name == "load_reward_model":
        from rmkit.models.load import load_reward_model

        return load_reward_model
    raise AttributeError(name)
