"""The installed Enclave version (from package metadata)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("enclave")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+source"
