"""The default model's fixed split: the 600 held-out pairs never move, never share a prompt with training, and
the validation split is carved by source from what remains."""
from collections import Counter

import pytest

from rmkit.train.data import prompt_key
from rmkit.train.splits import HELDOUT_SHA256, fingerprint, quality_split, validation_split


@pytest.fixture(scope="module")
def split(shared_data):
    return quality_split(shared_data)


def test_heldout_is_pinned_and_disjoint(split):
    train, held = split
    assert fingerprint(held) == HELDOUT_SHA256  # the same 600 pairs every figure was measured on
    counts = Counter(p.source for p in held)
    assert counts["ultrafeedback"] == 300 and counts["hh-rlhf/harmless-base"] == 150 and len(held) == 600
    assert not {prompt_key(p) for p in train} & {prompt_key(p) for p in held}


def test_validation_split_by_source(split):
    train, _ = split
    rest, val = validation_split(train, {"hh-rlhf": 40, "ultrafeedback": 20})
    fam = Counter(p.source.split("/")[0] for p in val)
    assert fam["hh-rlhf"] >= 40 and fam["ultrafeedback"] >= 20 and len(rest) + len(val) <= len(train)
    assert not {prompt_key(p) for p in rest} & {prompt_key(p) for p in val}
    with pytest.raises(ValueError, match="not a source"):
        validation_split(train, {"poetry": 3})
