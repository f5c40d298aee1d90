"""Batch plan, sharding and packing layouts (no model)."""
import pytest

from rmkit.train.collate import batch_plan, collate_packed, collate_padded, pack_rows, shard


def test_padded_layout():
    b = collate_padded([[5, 6, 7], [8]], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["cols"].tolist() == [2, 0] and int(b["real_tokens"]) == 4


def test_packed_positions_restart_per_sequence():
    b = collate_packed([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [9, 10, 8]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    assert list(zip(b["rows"].tolist(), b["cols"].tolist())) == [(0, 2), (1, 2), (1, 1)]
    assert "attention_mask" not in b


def test_packed_one_row_and_filler():
    b = collate_packed([[1, 2], [3]], pad_id=0, row_tokens=5)
    assert b["input_ids"].tolist() == [[1, 2, 3]]
    b = collate_packed([[1, 2, 3], [4, 5], [6, 7]], pad_id=0, row_tokens=4)
    assert b["position_ids"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 1]]  # filler is its own sequence
    assert b["input_ids"].tolist() == [[1, 2, 3, 0], [4, 5, 6, 7]]


def test_pack_rows_first_fit_decreasing():
    assert pack_rows([4, 1, 3, 2], capacity=5) == [[0, 1], [2, 3]]


def test_plan_deterministic_and_epochs():
    lengths = list(range(10))
    a = batch_plan(lengths, 4, 5, seed=1)
    assert a == batch_plan(lengths, 4, 5, seed=1) and a != batch_plan(lengths, 4, 5, seed=2)
    assert sorted(sum(a[:2], [])) == sorted(set(sum(a[:2], [])))  # no repeat within an epoch
    assert len(a) == 5 and all(len(s) == 4 for s in a)


def test_plan_groups_lengths():
    lengths = [1, 100] * 32
    plan = batch_plan(lengths, 4, 16, seed=0, group_by_length=True)
    assert all(len({lengths[i] for i in step}) == 1 for step in plan)


def test_plan_needs_one_batch():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        batch_plan([1, 2], 4, 1)


def test_shard_same_pairs_any_world():
    step = list(range(8))
    one = shard(step, 0, 1, 2)
    two = [shard(step, r, 2, 1) for r in range(2)]
    assert one == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [m for r in two for m in r] == one
    assert sorted(sum(shard(step, 1, 2, 2), [])) == [4, 5, 6, 7]


def test_plan_repeats_oversample_and_leave_out():
    lengths = [5] * 8
    repeats = [3, 3, 1, 1, 1, 1, 0, 0]  # two pairs thrice, four once, two left out: 10 per epoch
    plan = batch_plan(lengths, 5, 4, seed=0, repeats=repeats)
    for epoch in (plan[:2], plan[2:]):
        seen = sorted(i for step in epoch for i in step)
        assert seen == [0, 0, 0, 1, 1, 1, 2, 3, 4, 5]
    assert plan == batch_plan(lengths, 5, 4, seed=0, repeats=repeats)
    assert batch_plan(lengths, 4, 2, seed=0, repeats=[1] * 8) == batch_plan(lengths, 4, 2, seed=0)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        batch_plan(lengths, 4, 1, repeats=[1, 1, 1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="repeats has 2 entries for 8 pairs"):
        batch_plan(lengths, 4, 1, repeats=[1, 1])
