"""What a user is told when the file their URL served does not fit their job.

The file is whatever that URL's server sent, and the trainers' messages
(gpu_worker.training.data) quote it (its columns, a value). So only fixed phrases and a line or
row number reach the user, never the message itself.
"""

import re

from contracts.enums import JobType
from gpu_worker.domain.errors import UserDataError

# What a problem is called, found in the trainers' messages. First match wins.
_DATA_PROBLEMS = (
    ("not UTF-8 text", "the file is not UTF-8 text"),
    ("has no header row", "the CSV file has no header row"),
    ("repeats column", "the CSV header repeats a column"),
    ("more fields than header columns", "a line has more fields than the header"),
    ("cannot be parsed", "the CSV syntax is invalid"),
    ("is not valid JSON", "a line is not valid JSON"),
    ("is not a JSON object", "a line is not a JSON object"),
    ("are needed", "too few rows"),
    ("training rows are left", "too few rows"),
    ("distinct labels", "fewer than two distinct labels"),
    ("data needs", "the columns this job type needs are missing"),
    ("'score'", "a score is not a number in range"),
    ("'label' is empty", "a label is empty"),
    ("is empty or not text", "a required value is empty or not text"),
    ("message", "a conversation is malformed"),
)
_WHERE = re.compile(r"(CSV line|JSONL line|row) (\d+)\b")
# Problems with the job itself rather than the file: they quote nothing the server sent.
_ABOUT_THE_JOB = ("invalid hyperparameters:", "base model ")


def external_data_error(error: UserDataError, job_type: JobType) -> str:
    """What to tell the user about `error` when the data came from their URL: the kind of problem
    and where, never the file's content."""
    text = str(error)
    if text.startswith(_ABOUT_THE_JOB):
        return text
    problem = next(
        (name for marker, name in _DATA_PROBLEMS if marker in text), "its content does not fit"
    )
    where = _WHERE.match(text)
    at = f", {where.group(1)} {int(where.group(2))}" if where else ""
    return (
        f"The file at training_data_url is not a valid CSV/JSONL for a {job_type} job "
        f"({problem}{at}); upload the file to see a detailed report."
    )
