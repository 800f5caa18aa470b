"""Where the SDK finds its server and token, and the login store (`ftd login`).

Precedence: an argument, then the environment (FTD_BASE_URL, FTD_TOKEN), then the stored login,
then http://localhost:8000 with no token. A stored token is only ever sent to the server it was
stored for, so pointing the SDK at another URL never leaks it there.

The store is `credentials.json` in the user's config folder (platformdirs; FTD_CONFIG_DIR
overrides it), readable by its owner only: the folder 0700, the file 0600, written atomically.
"""

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_BASE_URL = "http://localhost:8000"
CREDENTIALS_FILE = "credentials.json"


def config_dir() -> Path:
    override = os.environ.get("FTD_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("ftd"))


def normalise_url(url: str) -> str:
    return url.rstrip("/")


@dataclass(frozen=True)
class Login:
    base_url: str
    token: str


class TokenStore:
    """The tokens `ftd login` saved, one per server, and which server is current."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()

    @property
    def path(self) -> Path:
        return self.directory / CREDENTIALS_FILE

    def _servers(self, data: dict[str, Any]) -> dict[str, Any]:
        servers = data.get("servers")
        return servers if isinstance(servers, dict) else {}

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable or damaged: as if nobody had logged in
        return raw if isinstance(raw, dict) else {}

    def current(self) -> Login | None:
        """The login of the server `ftd login` saved last."""
        data = self._read()
        url = data.get("current")
        return self.get(url) if isinstance(url, str) else None

    def get(self, base_url: str) -> Login | None:
        entry = self._servers(self._read()).get(normalise_url(base_url))
        token = entry.get("token") if isinstance(entry, dict) else None
        return Login(normalise_url(base_url), token) if isinstance(token, str) and token else None

    def save(self, base_url: str, token: str) -> Path:
        """Store `token` for `base_url` and make that server current."""
        data = self._read()
        servers = self._servers(data)
        url = normalise_url(base_url)
        servers[url] = {"token": token}
        self._write({"current": url, "servers": servers})
        return self.path

    def forget(self, base_url: str) -> bool:
        data = self._read()
        servers = self._servers(data)
        url = normalise_url(base_url)
        if servers.pop(url, None) is None:
            return False
        current = data.get("current") if data.get("current") != url else None
        self._write({"current": current, "servers": servers})
        return True

    def _write(self, data: dict[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        # mkstemp creates the file 0600; the rename makes the new content appear at once.
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
                out.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def resolve(
    base_url: str | None = None, token: str | None = None, *, store: TokenStore | None = None
) -> tuple[str, str | None]:
    """The server and token a client uses (see the module's docstring for the order)."""
    url = base_url or os.environ.get("FTD_BASE_URL")
    token = token or os.environ.get("FTD_TOKEN") or None
    if token is not None:
        return normalise_url(url or DEFAULT_BASE_URL), token
    store = store or TokenStore()
    if url is None:
        login = store.current()
        if login is not None:
            return login.base_url, login.token
        return DEFAULT_BASE_URL, None
    login = store.get(url)
    return normalise_url(url), login.token if login else None
