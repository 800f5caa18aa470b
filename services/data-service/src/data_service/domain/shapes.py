"""The file shapes each job type trains on, and how a header or a JSON object picks one."""

from dataclasses import dataclass

from contracts.enums import JobType


@dataclass(frozen=True)
class CsvShape:
    name: str
    job_type: JobType
    columns: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    label: str | None = None


CSV_SHAPES = (
    CsvShape("sentences", JobType.EMBEDDING, ("text",)),
    CsvShape("pairs", JobType.EMBEDDING, ("anchor", "positive")),
    CsvShape("triplets", JobType.EMBEDDING, ("anchor", "positive", "negative")),
    CsvShape("scored_pairs", JobType.EMBEDDING, ("sentence1", "sentence2", "score"), ("score",)),
    CsvShape("classification", JobType.CLASSIFIER, ("text", "label"), label="label"),
)

JSONL_SHAPES = {"instruction": JobType.LLM_LORA, "chat": JobType.LLM_LORA}
CHAT_ROLES = frozenset({"system", "user", "assistant"})


def describe_csv_shapes() -> str:
    return "; ".join(f"{s.job_type} ({s.name}): {','.join(s.columns)}" for s in CSV_SHAPES)


def match_csv_header(columns: list[str]) -> CsvShape | None:
    """The shape whose columns are exactly these (order free, case and spaces ignored)."""
    names = sorted(c.strip().lower() for c in columns)
    for shape in CSV_SHAPES:
        if sorted(shape.columns) == names:
            return shape
    return None


def closest_csv_shape(columns: list[str]) -> CsvShape:
    """The shape sharing most columns with the header (for a helpful message)."""
    names = {c.strip().lower() for c in columns}
    return max(CSV_SHAPES, key=lambda s: (len(names & set(s.columns)), -len(s.columns)))


def job_types_for_format(fmt: str) -> list[JobType]:
    if fmt == "jsonl":
        return [JobType.LLM_LORA]
    return sorted({s.job_type for s in CSV_SHAPES})
