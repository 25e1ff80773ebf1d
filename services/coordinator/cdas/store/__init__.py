"""Stores: where runs live. ``MemoryStore`` (embedded, the default) implements ``Store``."""

from cdas.store.base import Store
from cdas.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store"]
