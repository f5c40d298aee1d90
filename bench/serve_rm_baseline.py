"""A baseline reward server in the style of OpenRLHF's `openrlhf/cli/serve_rm.py`, for bench/serve_load.py.

    python bench/serve_rm_baseline.py --model ~/.cache/rmkit/models/smollm2-135m --port 5000 --bf16

Written for this benchmark (no OpenRLHF code), reproducing serve_rm's serving behaviour: FastAPI
`POST /get_reward` with `{"query": [text, ...]}`; each request is scored by itself, synchronously inside
the async handler (so requests are served one at a time and the event loop waits on the forward);
the tokenizer pads on the left to the longest query of the request (`padding=True`), truncates at
`--max-len`, in fixed chunks of `--batch-size` (default: the whole request); trailing pad / eos are
removed and one eos appended to every query. (serve_rm calls `str.strip(eos)`, which strips a set of
characters; this baseline removes the whole token string instead, which is what it means to do.)
The reward is the score head at the last position, which with left padding is the last real token.
"""
from __future__ import annotations

import argparse

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class BaselineRewardModel:
    def __init__(self, path: str, bf16: bool, max_len: int, batch_size: int | None):
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        self.max_len, self.batch_size = max_len, batch_size

    def _clean(self, text: str) -> str:
        for tok in (self.tokenizer.pad_token, self.tokenizer.eos_token):
            while tok and text.endswith(tok):
                text = text[: -len(tok)]
        return text + self.tokenizer.eos_token

    @torch.no_grad()
    def get_reward(self, queries: list[str]) -> list[float]:
        queries = [self._clean(q) for q in queries]
        size = self.batch_size or max(len(queries), 1)
        scores: list[float] = []
        for i in range(0, len(queries), size):
            batch = self.tokenizer(queries[i:i + size], return_tensors="pt", max_length=self.max_len,
                                   padding=True, truncation=True)
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            scores.extend(logits[:, 0].float().tolist())
        return scores


def build_app(rm: BaselineRewardModel) -> FastAPI:
    app = FastAPI()

    @app.post("/get_reward")
    async def get_reward(request: Request):
        data = await request.json()
        rewards = rm.get_reward(data.get("query"))  # blocking, as in serve_rm
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": {}})

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--max-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args()
    rm = BaselineRewardModel(args.model, args.bf16, args.max_len, args.batch_size)
    uvicorn.run(build_app(rm), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
