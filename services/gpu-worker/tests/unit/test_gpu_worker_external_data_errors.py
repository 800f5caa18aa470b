"""What a user is told about a bad file their URL served: each of the loader's own errors becomes
the kind of problem and its line or row, never a piece of the file."""

import json
from pathlib import Path
from typing import Literal

import pytest

from contracts.enums import JobType
from gpu_worker.domain.errors import UserDataError
from gpu_worker.domain.external_data import external_data_error
from gpu_worker.training.data import load

MARK = "ZZSECRET"


def jsonl(*rows: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


CASES: list[tuple[str, Literal["csv", "jsonl"], JobType, bytes, str]] = [
    ("empty", "csv", JobType.CLASSIFIER, b"", "no header row"),
    ("not utf-8", "csv", JobType.CLASSIFIER, b"text,label\n\xff" + MARK.encode(), "not UTF-8"),
    (
        "extra field",
        "csv",
        JobType.CLASSIFIER,
        f"text,label\nok,a\n{MARK},a,b\n".encode(),
        "more fields than the header, CSV line 3",
    ),
    (
        "bad json",
        "jsonl",
        JobType.CLASSIFIER,
        jsonl({"text": "a", "label": "b"}) + f'{{"{MARK}\n'.encode(),
        "not valid JSON, JSONL line 2",
    ),
    (
        "not an object",
        "jsonl",
        JobType.CLASSIFIER,
        jsonl([MARK]),
        "not a JSON object, JSONL line 1",
    ),
    ("few rows", "csv", JobType.CLASSIFIER, f"text,label\n{MARK},a\n".encode(), "too few rows"),
    (
        "classifier columns",
        "csv",
        JobType.CLASSIFIER,
        f"{MARK},label\n".encode() + b"a,b\n" * 4,
        "columns this job type needs are missing",
    ),
    (
        "embedding columns",
        "csv",
        JobType.EMBEDDING,
        f"{MARK}\n".encode() + b"a\n" * 4,
        "columns this job type needs are missing",
    ),
    (
        "lora columns",
        "jsonl",
        JobType.LLM_LORA,
        jsonl(*[{MARK: "x"}] * 4),
        "columns this job type needs are missing",
    ),
    (
        "score",
        "csv",
        JobType.EMBEDDING,
        b"sentence1,sentence2,score\n" + f"a,b,{MARK}\n".encode() * 4,
        "score is not a number in range, row 1",
    ),
    (
        "empty label",
        "csv",
        JobType.CLASSIFIER,
        b"text,label\n" + b"a,x\n" * 3 + f"{MARK},\n".encode(),
        "label is empty, row 4",
    ),
    (
        "empty text",
        "csv",
        JobType.CLASSIFIER,
        b"text,label\n" + f"{MARK},x\n".encode() * 2 + b",y\n" * 2,
        "empty or not text, row 3",
    ),
    (
        "one label",
        "csv",
        JobType.CLASSIFIER,
        b"text,label\n" + f"{MARK},x\n".encode() * 4,
        "fewer than two distinct labels",
    ),
    (
        "chat",
        "jsonl",
        JobType.LLM_LORA,
        jsonl(*[{"messages": [{"role": MARK, "content": "x"}]}] * 4),
        "conversation is malformed, row 1",
    ),
]


@pytest.mark.parametrize(
    ("data_format", "job_type", "content", "said"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_loader_error_is_named_without_the_files_content(
    tmp_path: Path,
    data_format: Literal["csv", "jsonl"],
    job_type: JobType,
    content: bytes,
    said: str,
) -> None:
    path = tmp_path / f"data.{data_format}"
    path.write_bytes(content)
    with pytest.raises(UserDataError) as error:
        load(path, data_format, job_type)

    message = external_data_error(error.value, job_type)

    assert MARK.lower() not in message.lower()  # headers are read lower-cased
    assert said in message
    assert message.startswith(
        f"The file at training_data_url is not a valid CSV/JSONL for a {job_type} job ("
    )
    assert message.endswith("upload the file to see a detailed report.")


def test_an_unknown_problem_is_described_without_its_text() -> None:
    message = external_data_error(UserDataError(f"odd: {MARK} at row 12"), JobType.EMBEDDING)
    assert MARK.lower() not in message.lower()  # headers are read lower-cased
    assert "its content does not fit" in message


def test_problems_with_the_job_itself_are_kept() -> None:
    error = UserDataError("invalid hyperparameters: epochs: must be at least 1")
    assert external_data_error(error, JobType.EMBEDDING) == str(error)
