"""Apply RabbitMQ definitions' users and permissions through the management API, with passwords
from the environment: the chart's broker-users hook (docker-compose's broker does the same in
deploy/rabbitmq/entrypoint.sh).

    python broker_users.py DEFINITIONS.json [MORE.json ...]

Environment: FTD_BROKER_MANAGEMENT_URL (http://host:15672), FTD_BROKER_ADMIN_USER and
FTD_BROKER_ADMIN_PASSWORD (an administrator), FTD_BROKER_VHOST (the vhost the definitions' one is
made into; default: theirs), and FTD_BROKER_<USER>_PASSWORD for each user (`job-api` reads
FTD_BROKER_JOB_API_PASSWORD). A user whose variable is unset gets no password and cannot log in.
Standard library only; passwords are never printed.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

WAIT_SECONDS = 600


def _request(method: str, path: str, body: Any = None) -> Any:
    base = os.environ["FTD_BROKER_MANAGEMENT_URL"].rstrip("/")
    auth = f"{os.environ['FTD_BROKER_ADMIN_USER']}:{os.environ['FTD_BROKER_ADMIN_PASSWORD']}"
    request = urllib.request.Request(  # noqa: S310 - the management API's http(s) URL
        f"{base}/api/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(auth.encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        payload = response.read()
    return json.loads(payload) if payload else None


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def password_variable(user: str) -> str:
    return "FTD_BROKER_" + user.upper().replace("-", "_") + "_PASSWORD"


def wait_for_api() -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            _request("GET", "overview")
            return
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"broker-users: management API not reachable: {exc}") from None
            time.sleep(5)


def apply(definitions: dict[str, Any], vhost: str | None) -> None:
    def where(name: str) -> str:
        return vhost or name

    for entry in definitions.get("vhosts", []):
        _request("PUT", f"vhosts/{_quote(where(entry['name']))}", {})
    for user in definitions.get("users", []):
        name = user["name"]
        password = os.environ.get(password_variable(name), "")
        tags = ",".join(user.get("tags", []))
        body = (
            {"password": password, "tags": tags}
            if password
            else {"password_hash": "", "tags": tags}
        )
        _request("PUT", f"users/{_quote(name)}", body)
        print(f"broker-users: {name} {'ready' if password else 'has no password (cannot log in)'}")
    for grant in definitions.get("permissions", []):
        _request(
            "PUT",
            f"permissions/{_quote(where(grant['vhost']))}/{_quote(grant['user'])}",
            {key: grant[key] for key in ("configure", "write", "read")},
        )
    for grant in definitions.get("topic_permissions", []):
        _request(
            "PUT",
            f"topic-permissions/{_quote(where(grant['vhost']))}/{_quote(grant['user'])}",
            {key: grant[key] for key in ("exchange", "write", "read")},
        )


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit("usage: broker_users.py DEFINITIONS.json [MORE.json ...]")
    wait_for_api()
    vhost = os.environ.get("FTD_BROKER_VHOST") or None
    for path in paths:
        with open(path, encoding="utf-8") as file:
            apply(json.load(file), vhost)


if __name__ == "__main__":
    main(sys.argv[1:])
