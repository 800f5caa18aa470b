"""The installed package's version (sent as the User-Agent)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ftd")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0"
