"""Which CSV header columns map to which layout (gpu_worker.training.data): names compared as
data-service compares them when it validates an upload, without case or surrounding spaces; a
missing column named in the error with the unexpected ones, the columns training leaves out named
in the data's stats; a JSON object's keys taken as written."""

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.enums import JobType
from gpu_worker.domain.errors import StopRequested, UserDataError
from gpu_worker.domain.training import TrainRequest
from gpu_worker.training import runner
from gpu_worker.training.data import Layout, load


def csv_file(tmp_path: Path, header: str, row: str, rows: int = 4) -> Path:
    """`header`, then `rows` copies of `row` where `{i}` alternates 0 and 1 (two labels)."""
    path = tmp_path / "data.csv"
    lines = [header, *(row.format(i=i % 2) for i in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("job_type", "header", "row", "layout", "keys"),
    [
        (JobType.EMBEDDING, "text", "a", Layout.TEXTS, {"text"}),
        (JobType.EMBEDDING, "anchor,positive", "a,b", Layout.PAIRS, {"anchor", "positive"}),
        (JobType.EMBEDDING, "query,document", "a,b", Layout.PAIRS, {"anchor", "positive"}),
        (JobType.EMBEDDING, "question,answer", "a,b", Layout.PAIRS, {"anchor", "positive"}),
        (JobType.EMBEDDING, "text1,text2", "a,b", Layout.PAIRS, {"anchor", "positive"}),
        # sentence1/sentence2 without a score are a pair, not scored.
        (JobType.EMBEDDING, "sentence1,sentence2", "a,b", Layout.PAIRS, {"anchor", "positive"}),
        (
            JobType.EMBEDDING,
            "anchor,positive,negative",
            "a,b,c",
            Layout.TRIPLETS,
            {"anchor", "positive", "negative"},
        ),
        (
            JobType.EMBEDDING,
            "sentence1,sentence2,score",
            "a,b,0.5",
            Layout.SCORED_PAIRS,
            {"sentence1", "sentence2", "score"},
        ),
        # A text column beside a pair: the pair wins.
        (JobType.EMBEDDING, "text,anchor,positive", "t,a,b", Layout.PAIRS, {"anchor", "positive"}),
        (JobType.CLASSIFIER, "label,text", "x{i},a", Layout.LABELLED, {"text", "label"}),
    ],
)
def test_a_header_picks_its_layout(
    tmp_path: Path, job_type: JobType, header: str, row: str, layout: Layout, keys: set[str]
) -> None:
    data = load(csv_file(tmp_path, header, row), "csv", job_type)
    assert data.layout is layout
    assert set(data.rows[0]) == keys


def test_the_first_accepted_name_of_a_role_wins(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "query,anchor,positive", "from-query,from-anchor,p")
    assert load(path, "csv", JobType.EMBEDDING).rows[0]["anchor"] == "from-anchor"


@pytest.mark.parametrize(
    ("header", "job_type", "layout"),
    [
        ("Text,Label", JobType.CLASSIFIER, Layout.LABELLED),
        (" text , LABEL ", JobType.CLASSIFIER, Layout.LABELLED),
        ("\ufeffText,label", JobType.CLASSIFIER, Layout.LABELLED),
        ("Sentence1, SENTENCE2 ,Score", JobType.EMBEDDING, Layout.SCORED_PAIRS),
        (" Anchor\t,Positive,NEGATIVE", JobType.EMBEDDING, Layout.TRIPLETS),
    ],
)
def test_case_and_surrounding_spaces_of_a_header_do_not_matter(
    tmp_path: Path, header: str, job_type: JobType, layout: Layout
) -> None:
    row = {Layout.SCORED_PAIRS: "a,b,0.5", Layout.TRIPLETS: "a,b,c"}.get(layout, "a,b{i}")
    data = load(csv_file(tmp_path, header, row), "csv", job_type)
    assert data.layout is layout
    assert data.source_columns == [c.strip().lower().lstrip("\ufeff") for c in header.split(",")]


def test_values_keep_their_case_and_lose_surrounding_spaces(tmp_path: Path) -> None:
    data = load(csv_file(tmp_path, "TEXT,LABEL", "  Great Film ,Pos{i}"), "csv", JobType.CLASSIFIER)
    assert data.rows[0] == {"text": "Great Film", "label": "Pos0"}


def test_a_missing_column_is_named_with_the_unexpected_ones(tmp_path: Path) -> None:
    with pytest.raises(UserDataError) as caught:
        load(csv_file(tmp_path, "Text,Labels, Notes ", "a,x,n"), "csv", JobType.CLASSIFIER)
    assert str(caught.value) == (
        "classifier data needs columns 'text' and 'label'; missing ['label'], "
        "unexpected ['labels', 'notes']"
    )


@pytest.mark.parametrize(
    ("job_type", "header", "row", "unused"),
    [
        (JobType.CLASSIFIER, "Notes,TEXT,label, Source ", "n,a,x{i},s", ["notes", "source"]),
        (JobType.CLASSIFIER, "text,label", "a,x{i}", []),
        # 'query' is an anchor's name, but the first accepted name of the role wins.
        (JobType.EMBEDDING, "query,Anchor,positive", "q,a,p", ["query"]),
        (JobType.EMBEDDING, "text,id", "t,1", ["id"]),
        (JobType.EMBEDDING, "sentence1,sentence2,score,split", "a,b,1,x", ["split"]),
        (JobType.LLM_LORA, "instruction,input,output,Category", "i,,o,c", ["category"]),
        (JobType.LLM_LORA, "prompt,completion,instruction", "p,c,i", ["instruction"]),
    ],
)
def test_columns_training_leaves_out_are_named(
    tmp_path: Path, job_type: JobType, header: str, row: str, unused: list[str]
) -> None:
    data = load(csv_file(tmp_path, header, row), "csv", job_type)
    assert data.unused_columns == unused
    assert data.stats()["unused_columns"] == unused


def test_an_embedding_header_with_no_usable_columns_lists_what_would_do(tmp_path: Path) -> None:
    with pytest.raises(UserDataError) as caught:
        load(csv_file(tmp_path, "anchor,title", "a,b"), "csv", JobType.EMBEDDING)
    message = str(caught.value)
    assert "needs a 'text' column, or 'anchor'+'positive'" in message
    assert "found columns ['anchor', 'title']" in message


def test_names_that_differ_only_in_case_are_one_column_twice(tmp_path: Path) -> None:
    with pytest.raises(UserDataError, match="repeats column 'text'"):
        load(csv_file(tmp_path, "text,Text,label", "a,b,x"), "csv", JobType.CLASSIFIER)


def test_a_row_longer_than_the_header_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\na,x\nb,y\nc,x,extra\nd,y\n", encoding="utf-8")
    with pytest.raises(UserDataError, match="CSV line 4: more fields than header columns"):
        load(path, "csv", JobType.CLASSIFIER)


def test_json_keys_are_taken_as_written(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(json.dumps({"Instruction": "say hi", "Output": "hi"}) + "\n" for _ in range(4)),
        encoding="utf-8",
    )
    with pytest.raises(UserDataError, match="llm_lora data needs 'instruction'"):
        load(path, "jsonl", JobType.LLM_LORA)


def test_the_jobs_log_counts_the_columns_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []

    class Lines:
        def progress(self, **report: Any) -> None:
            lines.extend(report.get("log_lines", ()))

        def should_stop(self) -> bool:
            return False

    def dispatch(*args: object) -> object:
        raise StopRequested(None)  # no trainer: the log line before it is what counts

    monkeypatch.setattr(runner, "_dispatch", dispatch)
    req = TrainRequest(
        job_id="job-1",
        attempt=1,
        job_type=JobType.CLASSIFIER,
        base_model="m",
        output_model="alice/m",
        hyperparameters={},
        data_path=csv_file(tmp_path, "text,label,Notes", "a,x{i},n"),
        data_format="csv",
        work_dir=tmp_path / "work",
    )
    with pytest.raises(StopRequested):
        runner.run(req, Lines())
    assert "read 4 rows (1 column not used); loading m" in lines
