"""The verification engine: seeds for reproducible statistical tests (the pytest plugin lives in ``plugin``)."""

from .seeds import seed_for

__all__ = ["seed_for"]
