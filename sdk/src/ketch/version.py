"""The installed version of the ``ketch`` distribution."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("ketch")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
