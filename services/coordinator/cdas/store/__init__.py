"""Stores: where runs live. ``MemoryStore`` (embedded, the default) and ``RedisStore`` implement
``Store``."""

from cdas.store.base import Store
from cdas.store.memory import MemoryStore
from cdas.store.redis import RedisStore

__all__ = ["MemoryStore", "RedisStore", "Store"]
