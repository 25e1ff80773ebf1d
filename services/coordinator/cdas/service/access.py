"""Who may call what: bearer tokens and their scopes, shared by both front doors (REST's
``Authorization: Bearer <token>``, gRPC's ``authorization`` metadata) and ``/metrics``.

A token carries one or more scopes:

- ``read``: every read of every run (run list and state, prompts, snapshot, export, the page's
  data, and ``/metrics`` when it asks for a token). A dashboard's token.
- ``write:<prefix>``: reads *and* writes on the runs whose id starts with ``<prefix>`` (create,
  batches, results, add prompts, delete, restore), nothing on other runs; the run list shows it
  only those runs. A team's trainers and rollout workers. ``write`` alone (empty prefix) covers
  every run.
- ``admin``: everything.

The single token of ``--token-file`` / ``$CDAS_API_TOKEN`` is an admin token, so a deployment
with one shared token works as before. Scoped tokens come from a file (``--tokens-file``, one
``<token> <scope>[,<scope>...]`` per line, ``#`` comments). Without any token the doors are open.

Two steps, so that no route or run can be probed without a token: ``identify`` (401 when the
token is missing or unknown; before routing) and ``authorize`` (403 naming the scope the call
lacks; needs the operation and its run). A token is looked up by its SHA-256 digest, so the
lookup takes the same time whichever token matches (or none): O(1) per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cdas.core.errors import InvalidArgumentError, PermissionDeniedError, UnauthenticatedError

Need = Literal["read", "write"]

NEEDS: Mapping[str, Need] = {
    "list_runs": "read",
    "get_run": "read",
    "get_prompt": "read",
    "get_state": "read",
    "snapshot": "read",
    "export_prompts": "read",
    "put_run": "write",
    "delete_run": "write",
    "add_prompts": "write",
    "next_batch": "write",
    "report_results": "write",
    "advance": "write",
    "restore": "write",
}
"""Each API operation (the names of ``cdas.observe.metrics.OPERATIONS``) and what it needs on its
run. ``next_batch`` is a write: it records the batch it issues (and so is ``advance``, which
reports results too). An operation missing here is
admin-only (fail closed)."""

METRICS = "metrics"
"""The pseudo-operation of ``GET /metrics``: needs read on every run."""


def need_of(operation: str) -> Need | None:
    """What ``operation`` needs on its run (None: admin only)."""
    return "read" if operation == METRICS else NEEDS.get(operation)


@dataclass(frozen=True, slots=True)
class Scope:
    kind: Literal["read", "write", "admin"]
    prefix: str = ""
    """For ``write``: the runs it covers are those whose id starts with this."""

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``"read"``, ``"admin"``, ``"write"`` or ``"write:<prefix>"``; anything else is an
        ``InvalidArgumentError`` naming it."""
        kind, colon, prefix = text.strip().partition(":")
        if kind in ("read", "admin") and not colon:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "write":
            return cls("write", prefix)
        raise InvalidArgumentError(
            f"scope {text.strip()!r} is not one of read, write:<run-id prefix>, admin",
            scope=text.strip(),
        )

    def __str__(self) -> str:
        return f"write:{self.prefix}" if self.kind == "write" else self.kind

    def covers(self, need: Need | None, run_id: str | None) -> bool:
        """Whether this scope allows an operation needing ``need`` on ``run_id`` (None: every
        run, as ``/metrics``); ``need`` None means admin-only."""
        if self.kind == "admin":
            return True
        if need is None:
            return False
        if self.kind == "read":
            return need == "read"
        return (run_id is not None and run_id.startswith(self.prefix)) or self.prefix == ""


ADMIN = (Scope("admin"),)


@dataclass(frozen=True, slots=True)
class Grant:
    """What one call's token allows."""

    scopes: tuple[Scope, ...]

    def allows(self, operation: str, run_id: str | None = None) -> bool:
        need = need_of(operation)
        if operation == "list_runs":
            return True  # the answer is filtered by ``sees``
        return any(s.covers(need, run_id) for s in self.scopes)

    def sees(self, run_id: str) -> bool:
        """Whether the run list shows ``run_id`` to this token."""
        return any(s.covers("read", run_id) for s in self.scopes)

    def check(self, operation: str, run_id: str | None = None) -> None:
        """Raise ``PermissionDeniedError`` (403, PERMISSION_DENIED) naming the scope the call
        lacks, unless this grant allows it."""
        if self.allows(operation, run_id):
            return
        need = need_of(operation)
        if need == "write":
            needs = "write:<a prefix of the run id> or admin"
        elif need == "read" and run_id is None:
            needs = "read or admin"
        elif need == "read":
            needs = "read, write:<a prefix of the run id> or admin"
        else:
            needs = "admin"
        on = f" on run {run_id!r}" if run_id is not None else ""
        raise PermissionDeniedError(
            f"this token's scopes ({', '.join(map(str, self.scopes))}) do not allow "
            f"{operation}{on}; it needs {needs}",
            operation=operation,
            needs=needs,
            scopes=[str(s) for s in self.scopes],
            **({"run_id": run_id} if run_id is not None else {}),
        )


OPEN = Grant(ADMIN)
"""The grant of every call when no token is configured."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Access:
    """The service's tokens. ``identify`` a call's ``Authorization`` header, then ``check``."""

    def __init__(self, tokens: Mapping[str, Iterable[Scope]] | None = None) -> None:
        self._grants = {_digest(t): Grant(tuple(s)) for t, s in (tokens or {}).items()}

    @classmethod
    def of(cls, token: str | None, scoped: Mapping[str, tuple[Scope, ...]] | None) -> Access:
        """The single admin ``token`` (if any) and the ``scoped`` tokens (if any)."""
        tokens: dict[str, tuple[Scope, ...]] = dict(scoped or {})
        if token:
            tokens[token] = ADMIN
        return cls(tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._grants)

    def identify(self, header: str | None) -> Grant:
        """The grant of the token in ``header``; ``UnauthenticatedError`` when tokens are set
        and it is missing, malformed or unknown. The refusal never echoes what was sent."""
        if not self._grants:
            return OPEN
        if not header:
            raise UnauthenticatedError("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # RFC 9110: the scheme is case-insensitive
            raise UnauthenticatedError(
                "wrong bearer token: the authorization scheme must be Bearer "
                "(send 'Authorization: Bearer <token>')"
            )
        grant = self._grants.get(_digest(credentials.strip()))
        if grant is None:
            raise UnauthenticatedError("wrong bearer token")
        return grant


def load_scoped_tokens(path: str) -> dict[str, tuple[Scope, ...]]:
    """The tokens file: ``<token> <scope>[,<scope>...]`` per line, blank lines and ``#``
    comments ignored. A bad line is an ``InvalidArgumentError`` naming the file and line (never
    the token)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgumentError(
            f"tokens file {path!r} cannot be read: {exc.strerror}", tokens_file=path
        ) from exc
    tokens: dict[str, tuple[Scope, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        token, _, scopes = line.partition(" ")
        where = f"tokens file {path!r} line {number}"
        if not scopes.strip():
            raise InvalidArgumentError(
                f"{where} gives no scope: write '<token> <scope>[,<scope>...]'",
                tokens_file=path,
                line=number,
            )
        if token in tokens:
            raise InvalidArgumentError(
                f"{where} repeats a token of an earlier line", tokens_file=path, line=number
            )
        try:
            tokens[token] = tuple(Scope.parse(s) for s in scopes.replace(" ", "").split(","))
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(
                f"{where}: {exc.message}", tokens_file=path, line=number
            ) from None
    if not tokens:
        raise InvalidArgumentError(f"tokens file {path!r} holds no token", tokens_file=path)
    return tokens
