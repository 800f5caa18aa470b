"""Reading training files and telling the user what is wrong with them (no training library)."""

import json
from pathlib import Path

import pytest

from contracts.enums import JobType
from gpu_worker.domain.errors import UserDataError
from gpu_worker.training.data import Layout, load, split


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[object]) -> str:
    return "\n".join(json.dumps(r) for r in rows) + "\n"


@pytest.mark.parametrize(
    ("header", "row", "layout"),
    [
        ("text", "a sentence", Layout.TEXTS),
        ("anchor,positive", "q,d", Layout.PAIRS),
        ("query,positive,negative", "q,d,n", Layout.TRIPLETS),
        ("sentence1,sentence2,score", "a,b,0.5", Layout.SCORED_PAIRS),
    ],
)
def test_embedding_layouts(tmp_path: Path, header: str, row: str, layout: Layout) -> None:
    path = write(tmp_path, "d.csv", header + "\n" + "\n".join([row] * 5) + "\n")
    data = load(path, "csv", JobType.EMBEDDING)
    assert data.layout is layout
    assert len(data.rows) == 5


def test_sts_scores_on_a_0_to_5_scale_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "sentence1,sentence2,score\na,b,5\na,c,0\na,d,2.5\na,e,1\n")
    data = load(path, "csv", JobType.EMBEDDING)
    assert [r["score"] for r in data.rows] == [1.0, 0.0, 0.5, 0.2]


def test_classifier_rows_and_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\ngood,pos\nbad,neg\nfine,pos\nawful,neg\n")
    data = load(path, "csv", JobType.CLASSIFIER)
    assert data.layout is Layout.LABELLED
    assert {r["label"] for r in data.rows} == {"pos", "neg"}


def test_lora_instruction_response_and_chat(tmp_path: Path) -> None:
    rows = [{"instruction": "say hi", "response": "hi"}] * 4
    data = load(write(tmp_path, "a.jsonl", jsonl(rows)), "jsonl", JobType.LLM_LORA)
    assert data.layout is Layout.INSTRUCTIONS
    assert data.rows[0] == {"instruction": "say hi", "input": "", "output": "hi"}
    chat = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ]
    data = load(write(tmp_path, "b.jsonl", jsonl(chat * 4)), "jsonl", JobType.LLM_LORA)
    assert data.layout is Layout.CHAT


@pytest.mark.parametrize(
    ("job_type", "name", "text", "reason"),
    [
        (JobType.CLASSIFIER, "d.csv", "text\na\nb\nc\nd\n", "missing ['label']"),
        (JobType.CLASSIFIER, "d.csv", "text,label\na,x\nb,x\nc,x\nd,x\n", "2 distinct labels"),
        (JobType.CLASSIFIER, "d.csv", "text,label\na,x\n", "at least 4"),
        (JobType.CLASSIFIER, "d.csv", "text,label\na,x\n,y\nc,x\nd,y\n", "row 2"),
        (JobType.EMBEDDING, "d.csv", "title\na\nb\nc\nd\n", "needs a 'text' column"),
        (
            JobType.EMBEDDING,
            "d.csv",
            "sentence1,sentence2,score\na,b,x\na,b,1\na,b,1\na,b,1\n",
            "not a number",
        ),
        (JobType.LLM_LORA, "d.jsonl", '{"instruction": "a", "output": "b"}\n{oops\n', "line 2"),
        (JobType.LLM_LORA, "d.jsonl", jsonl([{"question": "a"}] * 4), "'instruction'"),
        (
            JobType.LLM_LORA,
            "d.jsonl",
            jsonl([{"messages": [{"role": "user", "content": "only a question"}]}] * 4),
            "no 'assistant'",
        ),
    ],
)
def test_bad_data_says_why(
    tmp_path: Path, job_type: JobType, name: str, text: str, reason: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(UserDataError, match=None) as caught:
        load(path, "jsonl" if name.endswith("jsonl") else "csv", job_type)
    assert reason in str(caught.value)


def test_non_utf8_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\n\xff\xfe,x\n")
    with pytest.raises(UserDataError, match="UTF-8"):
        load(path, "csv", JobType.CLASSIFIER)


def test_split_is_deterministic_and_bounded() -> None:
    rows = [{"i": i} for i in range(10)]
    train_a, eval_a = split(rows, 0.2, seed=7)
    train_b, eval_b = split(rows, 0.2, seed=7)
    assert (train_a, eval_a) == (train_b, eval_b)
    assert len(eval_a) == 2
    assert len(train_a) == 8
    assert split(rows, 0.0, seed=7)[1] == []
    assert len(split(rows[:4], 0.5, seed=1)[1]) == 2  # never more than half
