#!/usr/bin/env python3
"""CPU instructions the gateway's stream relay spends per stream, counted by callgrind: a
load-independent measure of `veil_server.stream.relay` for A/B comparisons on a shared machine
(server_overhead.py's "gateway CPU per stream" is the same work timed, and moves with the load).

The stream is the one server_overhead.py times: the benchmark's 1 KB chat message anonymized in a
fresh request scope (an e-mail address and a phone number become tokens), echoed back by the
upstream as 250 chunks of 4 characters (role chunk first, finish chunk and `[DONE]` last), read in
4 KB reads as aiohttp hands them over. Each stream goes through everything the relay does after
the upstream's headers: SSE lines split and parsed, tokens restored across chunk boundaries,
usage counted, chunks written again as SSE, the `veil` block on the last one.

Each count runs a fresh interpreter under `valgrind --tool=callgrind` twice (hash randomisation
off): the same setup and warm-up, then 0 or N streams; the difference divided by N is the cost of
one stream (the request's own scope and anonymization included: ~1 M instructions).
`--against DIR` counts a second source tree too (its packages/veil-server/src first on the import
path), e.g. a checkout of an older commit made with `git worktree add /tmp/old OLD`, and prints
both side by side with their ratio.

    uv run python benchmarks/relay_instructions.py
    uv run python benchmarks/relay_instructions.py --against /tmp/old
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import callgrind

STREAMS = 20
WARM_UP = 5
PIECE = 4  # characters per chunk, as veil's echo upstream streams
READ = 4096  # bytes per upstream read


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def upstream_reads(text: str) -> list[bytes]:
    """The upstream's SSE answer echoing `text`, cut into reads of READ bytes."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": "chatcmpl-echo-0123456789abcdef01234567", "object": "chat.completion.chunk",
                     "created": 1764000000, "model": "echo", "system_fingerprint": "fp_echo",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})  # fmt: skip

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": text[i : i + PIECE]}) for i in range(0, len(text), PIECE)]
    events += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    data = b"".join(events)
    return [data[i : i + READ] for i in range(0, len(data), READ)]


class _Reads:
    """An upstream answer (veil_server.upstream._Answer's interface) that hands over fixed reads."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def blocks(self) -> AsyncIterator[list[str]]:
        from veil_server.upstream import SseLines

        splitter = SseLines()
        for data in self.reads:
            yield splitter.feed(data)
        yield splitter.close()

    async def aclose(self) -> None:
        return None


def child(streams: int) -> None:
    """Runs under callgrind: setup and warm-up, then `streams` streams relayed."""
    sys.path.insert(0, str(Path(__file__).parent))
    from server_overhead import MESSAGE
    from veil_server.conversation import Turn
    from veil_server.metrics import Metrics
    from veil_server.stream import relay
    from veil_server.upstream import UpstreamStream

    from veil import Engine, Policy, Veil

    engine = Engine(Policy(ner="off"))
    metrics = Metrics()
    reads: list[bytes] = []

    async def one() -> int:
        turn = Turn(Veil(engine=engine, audit_traffic=False).session("relay"), named_scope=False, show_mapping=False)
        sent = turn.anonymize_chat({"messages": [{"role": "user", "content": MESSAGE[:1000]}]})
        if not reads:
            reads.extend(upstream_reads(sent["messages"][0]["content"]))
        upstream = UpstreamStream(provider=None, answer=_Reads(reads))  # type: ignore[arg-type]
        written = 0
        async for data in relay(upstream, turn, kind="chat", metrics=metrics, endpoint="/v1/chat/completions",
                                hand_over=lambda: None):  # fmt: skip
            written += len(data)
        return written

    async def run() -> None:
        for _ in range(WARM_UP):
            await one()
        for _ in range(streams):
            await one()

    asyncio.run(run())


def instructions(streams: int, source: str | None) -> int:
    """Instructions callgrind counts for a child run that relays `streams` streams after the warm-up."""
    return callgrind.count(__file__, ["--child", str(streams)], paths=callgrind.checkout_paths(source))


def per_stream(streams: int, source: str | None) -> float:
    return (instructions(streams, source) - instructions(0, source)) / streams


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=STREAMS, help=f"streams counted (default {STREAMS})")
    parser.add_argument("--against", help="a second source tree (a checkout of the repository) to count")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (callgrind counts the instructions): apt-get install valgrind")
    chunks = len(range(0, 1000, PIECE))
    rows = [("this checkout", per_stream(args.streams, None))]
    if args.against:
        rows.append((args.against, per_stream(args.streams, args.against)))
    print(f"stream relay: instructions per stream ({chunks} chunks of {PIECE} characters, {args.streams} streams)")
    width = max(len(name) for name, _ in rows)
    for name, count in rows:
        ratio = f"  ({count / rows[0][1]:.2f}× this checkout)" if count is not rows[0][1] else ""
        print(f"{name.ljust(width)}  {count / 1e6:6.2f} M{ratio}")


if __name__ == "__main__":
    main()
