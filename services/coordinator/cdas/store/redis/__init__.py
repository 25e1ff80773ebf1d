"""The Redis store: runs in Redis or Redis Cluster, shared by every coordinator process."""

from cdas.store.redis.store import RedisStore

__all__ = ["RedisStore"]
