"""Modelog: experiment tracking, model registry and an audit log that is the data itself."""

from modelog._client import Connection

__all__ = ["Connection"]
__version__ = "0.1.0"
