"""Reading a conversation back from text another model's chat template rendered (`rmkit.models.chat_parse`),
on hand-written renderings of the four families, and tool messages in the data model.

    .venv/bin/python -m pytest tests/unit/test_chat_parse.py -q
"""
from __future__ import annotations

import pytest

from rmkit.data.schema import DataError, Message, to_conversation
from rmkit.models.chat_parse import ParseError, detect_family, parse_rendered

WANT = [("system", "Be brief."), ("user", "2+2?"), ("assistant", "4")]
RENDERED = {
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
              "<|im_start|>assistant\n4<|im_end|><|endoftext|><|endoftext|>",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant"
              "<|end_header_id|>\n\n4<|eot_id|>",
    "gemma": "<bos><start_of_turn>system\nBe brief.<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n"
             "<start_of_turn>model\n4<end_of_turn>\n<eos><pad><pad>",
    "mistral": "<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST] 2+2? [/INST] 4</s>",
}


@pytest.mark.parametrize("family", sorted(RENDERED))
def test_each_family_reads_back_its_messages(family):
    text = RENDERED[family]
    assert detect_family(text) == family
    assert [(m.role, m.content) for m in parse_rendered(text)] == WANT
    assert [(m.role, m.content) for m in parse_rendered(text, family)] == WANT


def test_a_reply_cut_off_before_its_end_token_is_taken_as_it_stands():
    text = "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\nOnce upon a"
    assert parse_rendered(text)[-1] == Message("assistant", "Once upon a")
    multi = "<s>[INST] Hi [/INST] Hello</s>[INST] And? [/INST] Bye</s>"
    assert [(m.role, m.content) for m in parse_rendered(multi)] == [
        ("user", "Hi"), ("assistant", "Hello"), ("user", "And?"), ("assistant", "Bye")]


@pytest.mark.parametrize("text,why", [
    ("<|im_start|>user\nHi<|im_end|>\nstray words<|im_start|>assistant\nYo<|im_end|>", "outside the chatml turns"),
    ("<|im_start|>user\nHi<|im_end|>\n", "ends with a 'user' turn"),
    ("<|im_start|>robot\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>", "role 'robot'"),
    ("plain text, no template", "no chat template's turn marker"),
])
def test_what_is_not_a_conversation_is_refused_with_the_reason(text, why):
    with pytest.raises(ParseError, match=why):
        parse_rendered(text)
    assert issubclass(ParseError, DataError)


def test_tool_messages_and_tool_calls_in_the_data_model():
    call = {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}
    conv = to_conversation([{"role": "user", "content": "2+2?"},
                            {"role": "assistant", "content": None, "tool_calls": [call]},
                            {"role": "tool", "name": "add", "content": "4"},
                            {"role": "assistant", "content": "4"}])
    assert conv[1].content == "" and conv[1].tool_calls == (call,) and conv[2].name == "add"
    assert conv[1].to_dict() == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert conv[1].key() != Message("assistant", "").key()  # a call changes the rendering: another context
    with pytest.raises(DataError, match="tool_calls must be a list"):
        to_conversation([{"role": "assistant", "content": "", "tool_calls": "add(2, 2)"}])
    with pytest.raises(DataError, match="only an assistant"):
        Message("user", "hi", tool_calls=(call,))
