"""chat-service: a chat backend on aiohttp and SQLite, observable from the first line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chat-service")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
