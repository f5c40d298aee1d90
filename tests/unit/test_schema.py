"""The data model: validation and the errors that name file, row and field."""
import pytest

from rmkit.data import DataError, Message, PreferencePair, to_conversation


def test_to_conversation_accepts_strings_dicts_and_messages():
    assert to_conversation("hi") == [Message("user", "hi")]
    assert to_conversation("ok", default_role="assistant") == [Message("assistant", "ok")]
    conv = to_conversation([{"role": "system", "content": "s"}, Message("user", "u")])
    assert [m.role for m in conv] == ["system", "user"]


@pytest.mark.parametrize("bad, needle", [
    ([{"role": "bot", "content": "x"}], "role"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": "user", "content": 3}], "content must be a string"),
    (42, "expected a string or a list"),
])
def test_to_conversation_rejects_malformed_messages(bad, needle):
    with pytest.raises(DataError, match=needle) as e:
        to_conversation(bad, where={"file": "f.jsonl", "row": 7, "field": "chosen"})
    assert "file f.jsonl, row 7, field 'chosen'" in str(e.value)


def test_pair_roundtrip_and_validation():
    d = {"id": "a", "source": "s", "prompt": "2+2?", "chosen": "4", "rejected": "5"}
    pair = PreferencePair.from_dict(d, file="x.jsonl", row=0)
    assert PreferencePair.from_dict(pair.to_dict()).to_dict() == pair.to_dict()
    assert [m.role for m in pair.chosen_conversation] == ["user", "assistant"]
    with pytest.raises(DataError, match="row 3, field 'prompt'"):
        PreferencePair.from_dict({**d, "prompt": [{"role": "assistant", "content": "x"}]}, row=3)
    with pytest.raises(DataError, match="field 'rejected'.*missing"):
        PreferencePair.from_dict({"prompt": "p", "chosen": "c"}, row=1)
    empty = PreferencePair.from_dict({**d, "chosen": "   ", "rejected": ""}, row=2)  # a reply like any other
    assert [m.content for m in empty.chosen] == ["   "] and [m.content for m in empty.rejected] == [""]
