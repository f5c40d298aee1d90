"""The benchmark n-gram index: built once over benchmark prompts, queried a chunk of pairs at a time.

    index = NgramIndex.build(benchmark_pairs, ngram=(13, 13), turns="first")
    hits = index.match([["first text of pair 0"], ["text a of pair 1", "text b"]])
    # {pair_position: Hit(docs={doc, ...}, ngrams={13: {entry, ...}})}, only pairs that matched

How it works: benchmark tokens get integer ids (a vocabulary); a training token outside it gets -1,
so it breaks every window it is in. Each distinct benchmark n-gram is one entry (sorted by its 64-bit
hash, with the benchmark documents holding it in CSR form). A chunk of training texts becomes one
id array (texts separated by -1); every window's hash is looked up with `searchsorted`, and each
candidate is verified token by token against the entry, so the result is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Iterable, Sequence

import numpy as np

from rmkit.decontam.ngrams import pair_texts, tokenizer, window_hashes
from rmkit.decontam.prefilter import Prefilter


@dataclass
class Table:
    """The distinct benchmark n-grams of one length n, sorted by hash."""

    hashes: np.ndarray     # uint64, sorted
    starts: np.ndarray     # int64: where the entry's tokens start in NgramIndex.ids
    doc_ptr: np.ndarray    # int64 CSR pointers: docs of entry e are doc_idx[doc_ptr[e]:doc_ptr[e+1]]
    doc_idx: np.ndarray    # int64
    bitmap: np.ndarray     # bool presence over the top bits of the hashes: a cheap first test
    shift: int


@dataclass
class Hit:
    docs: set[int] = field(default_factory=set)
    ngrams: dict[int, set[int]] = field(default_factory=dict)  # n → entries of tables[n]


def _lookup(vocab: dict[str, int], texts_per_doc: Sequence[Sequence[str]], tokenize
            ) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all texts (unknown tokens -1), each text followed by -1, and the document
    number of every position."""
    get = vocab.get
    ids: list[int] = []
    lengths: list[int] = []
    for texts in texts_per_doc:
        start = len(ids)
        for text in texts:
            toks = tokenize(text)
            ids.extend(map(get, toks, repeat(-1, len(toks))))  # get(t, -1), all in C
            ids.append(-1)
        lengths.append(len(ids) - start)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    return np.asarray(ids, dtype=np.int32), owner


def _distinct(rows: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first position, entry number) of each row, one entry per distinct row, entries in hash
    order. Distinct hashes are checked to mean distinct rows; on a collision, exact row unique."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if (rows == rows[first[inverse]]).all():
        return first, inverse
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(hashes[first], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.reshape(-1)]


def _bitmap(hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """A presence bitmap over the top bits of the hashes (about 32 slots per entry)."""
    bits = int(min(26, max(16, np.ceil(np.log2(max(len(hashes), 1) * 32)))))
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[hashes >> np.uint64(64 - bits)] = True
    return bitmap, 64 - bits


def _build_table(ids: np.ndarray, owner: np.ndarray, n: int, hashes: np.ndarray,
                 valid: np.ndarray) -> Table:
    """One entry per distinct valid n-gram, with the documents that hold it."""
    pos = np.nonzero(valid)[0]
    rows = ids[pos[:, None] + np.arange(n)]
    first, entry_of = _distinct(rows, hashes[pos])
    ndocs = int(owner.max()) + 1
    entry, doc = np.divmod(np.unique(entry_of.astype(np.int64) * ndocs + owner[pos]), ndocs)
    counts = np.bincount(entry, minlength=len(first))
    table_hashes = hashes[pos[first]]
    bitmap, shift = _bitmap(table_hashes)
    return Table(hashes=table_hashes, starts=pos[first].astype(np.int64),
                 doc_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                 doc_idx=doc.astype(np.int64), bitmap=bitmap, shift=shift)


@dataclass
class NgramIndex:
    lo: int
    hi: int
    tokens: str
    vocab: dict[str, int]
    words: list[str]
    ids: np.ndarray
    docs: list[dict[str, Any]]
    tables: dict[int, Table]
    prefilter: Prefilter | None = None  # built with the index; travels to the workers with it
    _texts: dict = field(default_factory=dict, repr=False, compare=False)  # ngram_text memo

    @classmethod
    def build(cls, pairs: Iterable[Any], *, ngram: tuple[int, int] = (13, 13), turns: str = "first",
              tokens: str = "punct", describe=None) -> "NgramIndex":
        """Index the n-grams (every n in the range) of each benchmark pair's `turns` texts.

        `describe(pair) -> dict` names a document in reports (default: id, source, category)."""
        describe = describe or (lambda p: {"benchmark": p.source, "id": p.id, "subset": p.category})
        docs, texts = [], []
        for p in pairs:
            docs.append(describe(p))
            texts.append(pair_texts(p, turns))
        tokenize, vocab = tokenizer(tokens), {}
        for doc_texts in texts:
            for t in doc_texts:
                for tok in tokenize(t):
                    vocab.setdefault(tok, len(vocab))
        ids, owner = _lookup(vocab, texts, tokenize)
        tables = {}
        for n, h, valid in window_hashes(ids, *ngram):
            if valid.any():
                tables[n] = _build_table(ids, owner, n, h, valid)
        index = cls(lo=ngram[0], hi=ngram[1], tokens=tokens, vocab=vocab, words=list(vocab),
                    ids=ids, docs=docs, tables=tables)
        index.prefilter = Prefilter.build(index) if tables else None
        return index

    @property
    def size(self) -> int:
        """Number of distinct benchmark n-grams indexed (all lengths)."""
        return sum(len(t.hashes) for t in self.tables.values())

    def ngram_text(self, n: int, entry: int) -> str:
        text = self._texts.get((n, entry))
        if text is None:
            start = int(self.tables[n].starts[entry])
            text = " ".join([self.words[i] for i in self.ids[start:start + n].tolist()])
            self._texts[(n, entry)] = text
        return text

    def match(self, texts_per_pair: Sequence[Sequence[str]], *, prefilter: bool = True
              ) -> dict[int, Hit]:
        """Pairs (by position in the input) that share at least one indexed n-gram.

        The character prefilter (prefilter.py) first drops texts that cannot match; the rest are
        tokenised and matched exactly. `prefilter=False` matches every text (same result)."""
        if not self.tables:
            return {}
        if not prefilter:
            return self._match_exact(texts_per_pair)
        if self.prefilter is None:
            self.prefilter = Prefilter.build(self)
        cand = self.prefilter.candidates(texts_per_pair).tolist()
        hits = self._match_exact([texts_per_pair[i] for i in cand])
        return {cand[j]: hit for j, hit in hits.items()}

    def _match_exact(self, texts_per_pair: Sequence[Sequence[str]]) -> dict[int, Hit]:
        ids, owner = _lookup(self.vocab, texts_per_pair, tokenizer(self.tokens))
        hits: dict[int, Hit] = {}
        for n, h, valid in window_hashes(ids, self.lo, self.hi):
            table = self.tables.get(n)
            if table is None:
                continue
            self._match_n(n, table, ids, owner, h, valid, hits)
        return hits

    def _match_n(self, n, table, ids, owner, h, valid, hits) -> None:
        pos = np.nonzero(table.bitmap[h >> np.uint64(table.shift)] & valid)[0]
        left = np.searchsorted(table.hashes, h[pos], "left")
        counts = np.searchsorted(table.hashes, h[pos], "right") - left
        pos, left, counts = pos[counts > 0], left[counts > 0], counts[counts > 0]
        if not len(pos):
            return
        win = np.repeat(pos, counts)
        first = np.repeat(left - np.cumsum(counts) + counts, counts)
        entry = first + np.arange(len(win))
        offs = np.arange(n)
        same = (ids[win[:, None] + offs] == self.ids[table.starts[entry][:, None] + offs]).all(1)
        _add_hits(n, table, owner[win[same]], entry[same], hits)


def _add_hits(n: int, table: Table, pairs: np.ndarray, entries: np.ndarray, hits: dict) -> None:
    """Record each (pair, entry) match: the entry under hits[pair].ngrams[n], its docs under
    hits[pair].docs (grouped with numpy: one Python step per matched pair, not per match)."""
    if not len(pairs):
        return
    size = np.int64(len(table.hashes))
    pair, entry = np.divmod(np.unique(pairs.astype(np.int64) * size + entries), size)
    counts = table.doc_ptr[entry + 1] - table.doc_ptr[entry]
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    docs = table.doc_idx[np.repeat(table.doc_ptr[entry], counts) + offs]
    ndocs = np.int64(docs.max() + 1 if len(docs) else 1)
    doc_pair, doc = np.divmod(np.unique(np.repeat(pair, counts) * ndocs + docs), ndocs)
    for p, es, ds in zip(*_groups(pair, entry), _groups(doc_pair, doc)[1]):
        hit = hits.setdefault(p, Hit())
        hit.ngrams.setdefault(n, set()).update(es)
        hit.docs.update(ds)


def _groups(keys: np.ndarray, values: np.ndarray) -> tuple[list, list]:
    """(distinct keys, values of each) of key-sorted arrays, as Python lists."""
    cut = np.nonzero(np.diff(keys))[0] + 1
    return keys[np.concatenate([[0], cut])].tolist(), [v.tolist() for v in np.split(values, cut)]
