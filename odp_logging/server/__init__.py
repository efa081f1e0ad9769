"""A local ODP-compatible events receiver, for development, tests, demos and benchmarks.

It implements `POST /v3/events` on its own (it imports nothing else from `odp_logging`), so
it catches the client's mistakes. `Receiver` serves from a thread of this process,
`ReceiverProcess` from a subprocess; both store events in SQLite, log every request and
play injected `Fault`s. See docs/receiver.md.
"""

from ._cli import add_arguments, main, run, serve
from ._faults import Fault, FaultKind
from ._process import ReceiverProcess
from ._receiver import Receiver
from ._store import RequestRecord, Stats

__all__ = [
    "Fault",
    "FaultKind",
    "Receiver",
    "ReceiverProcess",
    "RequestRecord",
    "Stats",
    "add_arguments",
    "main",
    "run",
    "serve",
]
