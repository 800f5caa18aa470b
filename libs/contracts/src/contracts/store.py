"""A worker's local model store (used without a Hub token), shared by the worker that writes it,
the server that loads from it and the services that name its models.

Layout: `<store>/<owner key>/<namespace>/<name>/<revision>/`. A folder per owner, not per
namespace: a namespace can be shared (an organisation granted to several users), and one user's
model must never land in, or be loaded from, another user's folder. The owner key is a hash of
the user id, so any id a token may hold (slashes, dots, an e-mail) is a safe folder name that
names nobody.

What users see is `local://<namespace>/<name>@<revision>`: where the model is in *a* store,
never a path on a server. The server that loads it resolves it against its own store folder and
the model's owner.
"""

import hashlib
import re

LOCAL_SCHEME = "local"
OWNER_KEY_PATTERN = r"^u[0-9a-f]{24}$"
_URI = re.compile(
    r"^local://(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"@(?P<revision>[A-Za-z0-9][A-Za-z0-9._-]*)$"
)


def owner_key(user_id: str) -> str:
    """The folder of a user's models in a local store."""
    return "u" + hashlib.sha256(user_id.encode()).hexdigest()[:24]


def local_uri(repo_id: str, revision: str) -> str:
    """`local://namespace/name@revision`."""
    return f"{LOCAL_SCHEME}://{repo_id}@{revision}"


def parse_local_uri(uri: str) -> tuple[str, str]:
    """(`namespace/name`, revision) of a `local://` URI; ValueError for anything else. Every part
    starts with a letter or digit (no `..`): the result is safe to join below a store folder."""
    match = _URI.fullmatch(uri)
    if match is None:
        raise ValueError("expected local://<namespace>/<name>@<revision>")
    return match["repo"], match["revision"]
