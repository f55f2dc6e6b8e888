"""A writer killed with SIGKILL mid-way leaves no token that a caller received but cannot restore."""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path

from veil.session import Veil

WRITES = 1000


def _writer(home: str, connection: Connection) -> None:
    veil = Veil.open(home, audit_traffic=False)
    session = veil.session("crash")
    for index in range(WRITES):
        value = f"client{index}@exemple.ca"
        token = session.token_for("EMAIL", value)
        connection.send((token, value))  # only after get_or_create returned: the token is "handed out"


def test_every_token_handed_out_before_a_sigkill_restores(tmp_path: Path) -> None:
    home = str(tmp_path / "vault")
    Veil.open(home).close()  # keys and schema exist before the race
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    writer = context.Process(target=_writer, args=(home, sender))
    writer.start()
    sender.close()
    received: list[tuple[str, str]] = []
    while len(received) < WRITES // 3:
        received.append(receiver.recv())
    os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    writer.join()
    while receiver.poll():
        try:
            received.append(receiver.recv())
        except EOFError:
            break
    assert writer.exitcode == -signal.SIGKILL
    assert WRITES // 3 <= len(received) < WRITES

    survivor = Veil.open(home).session("crash")
    for token, value in received:
        assert survivor.restore(token) == value
    # and the next writer carries on where the killed one stopped, without reusing a number
    fresh = survivor.token_for("EMAIL", "new@exemple.ca")
    assert fresh not in {token for token, _ in received}
