"""Writes (or with --check, verifies) the output-model name cases the UI's validator is tested on.

Each case is decided by job-api's own validate_output_model and FinetuneJobCreate's length limits,
so the form's check (src/lib/forms/outputModel.ts) is tested against the server's rule, and
`make ui-check` fails when the server's rule changes without the UI.
"""

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from job_api.domain.errors import InvalidJob
from job_api.entrypoints.schemas import FinetuneJobCreate
from job_api.service_layer.jobs import validate_output_model

OUT = Path(__file__).resolve().parents[1] / "src/lib/forms/output-model-cases.json"

NAMES = [
    "alice/custom-embedding",
    "a/b",
    "ab",
    "",
    "noslash",
    "a/b/c",
    "/name",
    "owner/",
    "Owner_1/Model.v2",
    "owner/model--x",
    "owner/model..x",
    "owner/-model",
    "owner/model-",
    "owner/.model",
    "owner/model.",
    "owner/_model",
    "owner/model_",
    "owner/model.git",
    "owner/model.gitx",
    "own er/model",
    "owner/mödel",
    "owner/" + "m" * 96,
    "owner/" + "m" * 97,
    "o" * 96 + "/model",
    "o" * 97 + "/model",
    "owner/m",
    "x/y-z_1.2",
    "owner/model!",
    "owner\\model",
    "owner/ model",
    # Not listed: "owner/model\n". job-api accepts it (Python's `$` matches before a final
    # newline; `re.fullmatch` or `\Z` would not); the UI refuses it, the safe side.
]


def accepted(name: str) -> bool:
    try:
        FinetuneJobCreate.model_validate(
            {
                "job_type": "embedding",
                "base_model": "m",
                "training_data_url": "https://x.example/d.csv",
                "output_model": name,
                "gpu_provider": "local",
            }
        )
        validate_output_model(name)
    except (ValidationError, InvalidJob):
        return False
    return True


def render() -> str:
    cases = [{"name": n, "ok": accepted(n)} for n in NAMES]
    return json.dumps(cases, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run `make ui-gen`", file=sys.stderr)
            sys.exit(1)
        print(f"{OUT.name} matches job-api's rule")
    else:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")
