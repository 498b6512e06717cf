"""stream-wfm: Kafka-native webhook delivery for contact-center workforce management."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stream-wfm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
