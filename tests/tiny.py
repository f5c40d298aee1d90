"""Tiny offline models and tokenizers for tests: built from a config at test time (2 layers, hidden 64).

    tok = build_tokenizer("llama3")            # chat template puts <bos> in the text
    path = save_tiny_model(tmp_path, "llama", tok)
"""
from __future__ import annotations

import copy
from pathlib import Path

CORPUS = [
    "Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple, and finally "
    "splits all her apples equally among herself and her 2 siblings. How many apples does each get?",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { } , . ; : ! ?",
    "Human: Assistant: user assistant system You are a helpful assistant. def main(): return 42",
    "Hello! How can I help you today? Sure, here is a poem about the sea and the sky.",
]
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
            "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>"]

TEMPLATES = {
    # Llama-3 style: BOS written by the template itself
    "llama3": ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
               "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"),
    # Gemma style: BOS in the template, model turn named "model"
    "gemma": ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
              "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
              "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
    # ChatML (Qwen / SmolLM2): no BOS at all; conversations end with <|im_end|>\n
    "chatml": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    # ends with the eos token itself (for the pad == eos case)
    "eos_end": ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                "{% endfor %}<eos>"),
}


def build_tokenizer(template: str = "llama3", *, pad: str | None = "<pad>", add_bos: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if add_bos:  # like Llama / Gemma tokenizers: plain tokenize() prepends <bos>
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                 pad_token=pad, unk_token="<unk>", additional_special_tokens=SPECIALS[4:])
    hf.chat_template = TEMPLATES[template]
    return hf


def build_model(arch: str, tok, *, seed: int = 0, pad_token_id: int | None = None, **overrides):
    import torch
    from transformers import (Gemma2Config, Gemma2ForSequenceClassification, LlamaConfig,
                              LlamaForSequenceClassification, Qwen2Config, Qwen2ForSequenceClassification,
                              Qwen3Config, Qwen3ForSequenceClassification)

    classes = {"llama": (LlamaConfig, LlamaForSequenceClassification),
               "gemma2": (Gemma2Config, Gemma2ForSequenceClassification),
               "qwen2": (Qwen2Config, Qwen2ForSequenceClassification),
               "qwen3": (Qwen3Config, Qwen3ForSequenceClassification)}
    cfg_cls, model_cls = classes[arch]
    kw = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, num_labels=1, max_position_embeddings=512,
              pad_token_id=tok.pad_token_id if pad_token_id is None else pad_token_id,
              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if arch in ("gemma2", "qwen3"):
        kw["head_dim"] = 16
    kw.update(overrides)
    cfg = cfg_cls(**kw)
    torch.manual_seed(seed)
    attn = "eager" if arch == "gemma2" else "sdpa"
    model = model_cls._from_config(copy.deepcopy(cfg), attn_implementation=attn)
    with torch.no_grad():  # a head big enough that rewards differ visibly between inputs
        model.score.weight.normal_(0, 1.0)
    return model.eval()


def save_tiny_model(path: Path, arch: str = "llama", tok=None, *, template: str = "llama3", **kw) -> Path:
    tok = tok if tok is not None else build_tokenizer(template)
    model = build_model(arch, tok, **kw)
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
