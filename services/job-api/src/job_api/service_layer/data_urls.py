"""External training data URLs: a host that names an internal place is refused at creation.

Only the URL's text is judged here (job-api resolves nothing): address literals in every
spelling, metadata and local-only names. A public-looking name passes; the worker checks what it
resolves to when it connects, and every redirect, with the same rules (`netguard`).
"""

from job_api.domain.errors import InvalidJob
from netguard import url_refusal


def check_external_data_url(url: str, allowed_hosts: tuple[str, ...]) -> None:
    """Raise InvalidJob(`data_url_refused`) when the host of `url` may not be fetched. The
    operator's `allowed_hosts` (hosts, or `.suffix`es) are exempt."""
    refused = url_refusal(url, allowed_hosts=allowed_hosts)
    if refused is None:
        return
    raise InvalidJob(
        "data_url_refused",
        f"training_data_url is refused: its host is {refused.reason}. Workers fetch training "
        "data only from public hosts; upload the file instead, or ask the operator to allow "
        "the host.",
        "training_data_url",
    )
