"""Read a job's training file and decide what it holds, with pure Python (no training library).

Every problem with the data is a `UserDataError` whose message names the row or column, so the
user reads on the job what to fix.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TextIO

from contracts.enums import JobType
from gpu_worker.domain.errors import UserDataError

Row = dict[str, Any]
MIN_ROWS = 4
MAX_ERRORS_SHOWN = 3


class Layout(StrEnum):
    """What the rows of a file are, per job type."""

    TEXTS = "texts"  # embedding: text
    PAIRS = "pairs"  # embedding: anchor, positive
    TRIPLETS = "triplets"  # embedding: anchor, positive, negative
    SCORED_PAIRS = "scored_pairs"  # embedding: sentence1, sentence2, score
    LABELLED = "labelled"  # classifier: text, label
    INSTRUCTIONS = "instructions"  # llm_lora: instruction, input?, output|response
    CHAT = "chat"  # llm_lora: messages
    PROMPT_COMPLETION = "prompt_completion"  # llm_lora: prompt, completion


# Accepted column names for each role, first match wins.
_ANCHOR = ("anchor", "query", "question", "sentence1", "text1")
_POSITIVE = ("positive", "document", "answer", "sentence2", "text2")
_NEGATIVE = ("negative",)


@dataclass(frozen=True)
class Dataset:
    layout: Layout
    rows: list[Row]  # normalised: the keys below, per layout
    source_columns: list[str]
    # The source columns the layout reads; the others are left out of training.
    used_columns: tuple[str, ...] = ()

    @property
    def unused_columns(self) -> list[str]:
        return [c for c in self.source_columns if c not in self.used_columns]

    def stats(self) -> dict[str, Any]:
        return {
            "rows": len(self.rows),
            "layout": self.layout.value,
            "columns": self.source_columns,
            "unused_columns": self.unused_columns,
        }


def read_rows(path: Path, data_format: Literal["csv", "jsonl"]) -> list[Row]:
    """The file's rows as dicts. Decoding or syntax errors are UserDataError.

    A CSV header's names are compared as data-service compares them when it validates an upload:
    without case or surrounding spaces (` Text ` is `text`); the rows' keys are those normalised
    names. A JSON object's keys are taken as written."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if data_format == "csv":
                return _read_csv(fh)
            return _read_jsonl(fh.read().splitlines())
    except UnicodeDecodeError as exc:
        raise UserDataError(f"the file is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise UserDataError(f"the CSV file cannot be parsed: {exc}") from exc


def _read_csv(fh: TextIO) -> list[Row]:
    reader = csv.DictReader(fh)
    if not reader.fieldnames:
        raise UserDataError("the CSV file has no header row")
    names = [name.strip().lower() for name in reader.fieldnames]
    repeated = [name for name, count in Counter(names).items() if name and count > 1]
    if repeated:
        raise UserDataError(
            f"the CSV header repeats column '{repeated[0]}' (names are compared without case or "
            "surrounding spaces)"
        )
    reader.fieldnames = names
    rows: list[Row] = []
    for i, raw in enumerate(reader, start=2):
        if None in raw:
            raise UserDataError(f"CSV line {i}: more fields than header columns")
        rows.append(dict(raw))
    return rows


def _read_jsonl(lines: Sequence[str]) -> list[Row]:
    rows: list[Row] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserDataError(f"JSONL line {i} is not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise UserDataError(f"JSONL line {i} is not a JSON object")
        rows.append(value)
    return rows


def load(path: Path, data_format: Literal["csv", "jsonl"], job_type: JobType) -> Dataset:
    rows = read_rows(path, data_format)
    if len(rows) < MIN_ROWS:
        raise UserDataError(f"the file has {len(rows)} rows; at least {MIN_ROWS} are needed")
    columns = list(dict.fromkeys(k for row in rows[:100] for k in row))
    if job_type is JobType.EMBEDDING:
        return _embedding(rows, columns)
    if job_type is JobType.CLASSIFIER:
        return _classifier(rows, columns)
    return _lora(rows, columns)


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in columns), None)


def _text(row: Row, column: str, line: int) -> str:
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        raise UserDataError(f"row {line}: column '{column}' is empty or not text")
    return value.strip()


def _embedding(rows: list[Row], columns: list[str]) -> Dataset:
    out: list[Row] = []
    if "score" in columns and {"sentence1", "sentence2"} <= set(columns):
        scores: list[float] = []
        for i, row in enumerate(rows, start=1):
            try:
                score = float(row["score"])
            except (TypeError, ValueError) as exc:
                raise UserDataError(f"row {i}: 'score' is not a number") from exc
            if not 0.0 <= score <= 5.0:
                raise UserDataError(f"row {i}: 'score' must lie in [0, 1] (or [0, 5])")
            scores.append(score)
            out.append(
                {"sentence1": _text(row, "sentence1", i), "sentence2": _text(row, "sentence2", i)}
            )
        scale = 5.0 if max(scores) > 1.0 else 1.0  # a 0..5 STS-style scale, or 0..1
        for r, score in zip(out, scores, strict=True):
            r["score"] = score / scale
        return Dataset(Layout.SCORED_PAIRS, out, columns, ("sentence1", "sentence2", "score"))
    anchor, positive = _pick(columns, _ANCHOR), _pick(columns, _POSITIVE)
    if anchor and positive:
        negative = _pick(columns, _NEGATIVE)
        for i, row in enumerate(rows, start=1):
            item: Row = {"anchor": _text(row, anchor, i), "positive": _text(row, positive, i)}
            if negative:
                item["negative"] = _text(row, negative, i)
            out.append(item)
        layout = Layout.TRIPLETS if negative else Layout.PAIRS
        used = (anchor, positive, negative) if negative else (anchor, positive)
        return Dataset(layout, out, columns, used)
    if "text" in columns:
        out = [{"text": _text(row, "text", i)} for i, row in enumerate(rows, start=1)]
        return Dataset(Layout.TEXTS, out, columns, ("text",))
    raise UserDataError(
        "embedding data needs a 'text' column, or 'anchor'+'positive' (optional 'negative'), "
        f"or 'sentence1'+'sentence2'+'score'; found columns {columns}"
    )


def _classifier(rows: list[Row], columns: list[str]) -> Dataset:
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        unexpected = [c for c in columns if c not in ("text", "label")]
        raise UserDataError(
            f"classifier data needs columns 'text' and 'label'; missing {missing}, "
            f"unexpected {unexpected}"
        )
    out: list[Row] = []
    for i, row in enumerate(rows, start=1):
        label = row.get("label")
        if label is None or (isinstance(label, str) and not label.strip()):
            raise UserDataError(f"row {i}: 'label' is empty")
        out.append({"text": _text(row, "text", i), "label": str(label).strip()})
    counts = Counter(r["label"] for r in out)
    if len(counts) < 2:
        raise UserDataError(
            f"classifier data needs at least 2 distinct labels; found {len(counts)}"
        )
    return Dataset(Layout.LABELLED, out, columns, ("text", "label"))


def _lora(rows: list[Row], columns: list[str]) -> Dataset:
    if "messages" in columns:
        chats = [_chat(row, i) for i, row in enumerate(rows, 1)]
        return Dataset(Layout.CHAT, chats, columns, ("messages",))
    if "prompt" in columns and "completion" in columns:
        pc: list[Row] = [
            {"prompt": _text(r, "prompt", i), "completion": _text(r, "completion", i)}
            for i, r in enumerate(rows, start=1)
        ]
        return Dataset(Layout.PROMPT_COMPLETION, pc, columns, ("prompt", "completion"))
    answer = _pick(columns, ("output", "response"))
    if "instruction" in columns and answer:
        out: list[Row] = []
        for i, row in enumerate(rows, start=1):
            extra = row.get("input")
            out.append(
                {
                    "instruction": _text(row, "instruction", i),
                    "input": extra.strip() if isinstance(extra, str) else "",
                    "output": _text(row, answer, i),
                }
            )
        return Dataset(Layout.INSTRUCTIONS, out, columns, ("instruction", "input", answer))
    raise UserDataError(
        "llm_lora data needs 'instruction' + 'output' (or 'response'), optional 'input'; "
        f"or chat 'messages'; or 'prompt' + 'completion'; found columns {columns}"
    )


_ROLES = {"system", "user", "assistant"}


def _chat(row: Row, line: int) -> Row:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UserDataError(f"row {line}: 'messages' must be a non-empty list")
    clean = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise UserDataError(
                f"row {line}: each message needs a 'role' in {sorted(_ROLES)} and a 'content'"
            )
        content = m.get("content")
        if not isinstance(content, str):
            raise UserDataError(f"row {line}: a message's 'content' must be text")
        clean.append({"role": m["role"], "content": content})
    if not any(m["role"] == "assistant" for m in clean):
        raise UserDataError(f"row {line}: the conversation has no 'assistant' message to learn")
    return {"messages": clean}


def split(rows: list[Row], eval_split: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Shuffle with `seed` and hold out `eval_split` (at least 2 rows when > 0, at most half)."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 (a data split, not a secret)
    if eval_split <= 0:
        return shuffled, []
    n_eval = min(max(2, round(len(shuffled) * eval_split)), len(shuffled) // 2)
    return shuffled[n_eval:], shuffled[:n_eval]
