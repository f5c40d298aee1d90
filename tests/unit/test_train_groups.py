"""pair_mode "all": groups of one prompt's responses, edges, and the Bradley-Terry loss over all
ordered pairs, on hand-computed numbers."""
import math

import pytest
import torch

from rmkit.train.data import EncodedGroup, EncodedPair, merge_by_prompt, ranked_edges


def test_ranked_edges_all_ordered_pairs_ties_skipped():
    assert ranked_edges([3.0, 1.0, 2.0]) == ((0, 1), (0, 2), (2, 1))
    assert ranked_edges([1.0, 1.0]) == ()


def test_merge_by_prompt_shares_responses():
    a, b, c = (1, 2, 3), (1, 2, 4), (1, 2, 5)
    pairs = [EncodedPair(a, b, 0.5, "p"), EncodedPair(b, c, 0.0, "p"), EncodedPair(c, a, 0.0, "q")]
    g = merge_by_prompt(pairs)
    assert g[0] == EncodedGroup((a, b, c), ((0, 1), (1, 2)), (0.5, 0.0))
    assert g[1] == EncodedGroup((c, a), ((0, 1),), (0.0,))


def test_group_loss_by_hand():
    """Rewards 2, 0, 1 for scores 3 > 1 < 2: edges (0,1) d=2, (0,2) d=1, (2,1) d=1."""
    from rmkit.train.collate import edge_index
    from rmkit.train.loss import edge_loss

    g = EncodedGroup(((1,), (2,), (3,)), ranked_edges([3.0, 1.0, 2.0]), (0.0,) * 3)
    batch = edge_index([g, EncodedPair((4,), (5,))])
    assert batch["winners"].tolist() == [0, 0, 2, 3] and batch["losers"].tolist() == [1, 2, 1, 4]
    rewards = torch.tensor([2.0, 0.0, 1.0, 0.5, 0.5])
    loss, c, r = edge_loss(rewards, batch, use_margin=False, center_coefficient=0.0)
    sp = lambda d: math.log1p(math.exp(-d))  # -log sigmoid(d)
    assert loss.item() == __import__("pytest").approx((sp(2) + sp(1) + sp(1) + sp(0)) / 4, abs=1e-6)


def test_oversample_repeats_match_sources_by_prefix():
    from rmkit.train.data import oversample_repeats

    items = [EncodedPair((1,), (2,), source=s) for s in
             ("ultrafeedback", "hh-rlhf/harmless-base", "hh-rlhf/helpful-base", "hh-rlhfx", "other")]
    assert oversample_repeats(items, {}) is None
    assert oversample_repeats(items, {"ultrafeedback": 3, "hh-rlhf": 0}) == [3, 0, 0, 1, 1]
    # the longest key wins; "hh-rlhf" does not cover "hh-rlhfx" (a prefix only up to a "/")
    assert oversample_repeats(items, {"hh-rlhf": 2, "hh-rlhf/harmless-base": 0}) == [1, 0, 2, 1, 1]
    with pytest.raises(ValueError, match=r"\['ultrafedback'\] match no training pair's source"):
        oversample_repeats(items, {"ultrafedback": 3})
    # pair_mode "all": a merged group keeps its pairs' source
    assert merge_by_prompt([EncodedPair((1,), (2,), 0.0, "p", "uf")])[0].source == "uf"
