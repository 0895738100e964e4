"""The splitnet exception tree, and the CLI exit codes that go with it.

::

    SplitnetError                 base of everything splitnet raises on purpose (exit 1)
    ├── ConfigError               settings or plan break a rule; carries every violation (exit 2)
    ├── ProtocolError             a peer sent a malformed message (gRPC INVALID_ARGUMENT)
    └── RuntimeFailure            training could not go on: a peer, a transfer, a step (exit 1;
        │                         gRPC ABORTED)
        ├── PlanMismatch          a peer's plan fingerprint differs (gRPC FAILED_PRECONDITION)
        ├── PeerUnavailable       a peer stopped answering or cannot be reached (gRPC
        │                         UNAVAILABLE, DEADLINE_EXCEEDED)
        ├── BindFailed            a listener's port is in use (names its key); a ConfigError
        │                         at start, retried only by a restarted incarnation
        └── TransferFailed        a transfer could not complete (refused, ended, timed out, or
                                  a payload that does not verify); the one error a tensor or
                                  bulk transport reports through its ``on_failure`` callback,
                                  naming the peer, with the original error as ``__cause__``

The gRPC status codes and tensor refusal kinds of each error are one table, in
``splitnet.transport.status``. CLI exit codes: 0 success, 1 runtime failure, 2 bad configuration
or usage, 130 interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EXIT_CONFIG",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "BindFailed",
    "ConfigError",
    "PeerUnavailable",
    "PeersLost",
    "PlanMismatch",
    "ProtocolError",
    "RuntimeFailure",
    "SplitnetError",
    "TransferFailed",
    "Violation",
]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


class SplitnetError(Exception):
    """Base of every error splitnet raises on purpose."""

    exit_code = EXIT_RUNTIME


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, and a sentence naming the input (key, task, client)."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


class ConfigError(SplitnetError):
    """Settings or the plan break one or more rules; all of them are listed at once."""

    exit_code = EXIT_CONFIG

    def __init__(self, violations: list[Violation] | Violation, source: str = "",
                 warnings: tuple[str, ...] = ()) -> None:
        self.violations = [violations] if isinstance(violations, Violation) else list(violations)
        self.source = source
        self.warnings = warnings
        super().__init__(self.render())

    def render(self) -> str:
        """Return the bulleted list a user sees."""
        where = f" in {self.source}" if self.source else ""
        n = len(self.violations)
        head = f"{n} configuration error{'s' if n != 1 else ''}{where}:"
        lines = [head, *(f"  - {v}" for v in self.violations)]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class RuntimeFailure(SplitnetError):
    """Training could not go on (a peer stopped answering, a transfer failed, a step raised)."""


class ProtocolError(SplitnetError):
    """A peer sent a malformed or unexpected message; it is rejected and the client goes on."""


class PlanMismatch(RuntimeFailure):
    """A peer's plan differs from ours; the message says which client and in what."""


class PeerUnavailable(RuntimeFailure):
    """A peer could not be reached, or stopped answering for longer than ``PEER_TIMEOUT``."""


class BindFailed(RuntimeFailure):
    """A listener could not bind its port (in use); ``key`` is the setting that gave the port.

    Note: bind failures (:mod:`splitnet.transport.listen`).
    """

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key

    def as_config_error(self) -> ConfigError:
        """Return this failure as the configuration error it is at a client's start (exit 2)."""
        return ConfigError(Violation("setting", str(self)))


class PeersLost(PeerUnavailable):
    """Peers did not answer a join after a loss (``FAILURE_POLICY=drop``): drop ``clients``."""

    def __init__(self, message: str, clients: tuple[int, ...]) -> None:
        super().__init__(message)
        self.clients = clients


class TransferFailed(RuntimeFailure):
    """A transfer could not complete: refused by the peer, cut off, timed out, or unverifiable."""

