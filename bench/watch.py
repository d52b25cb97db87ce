"""The benchmarks never hang silently: every wait is bounded, says it is still waiting, and
on overrun ends the run with :class:`Stalled`, whose message names the phase and what it was
waiting for (the CLIs print it and exit 1). It is defined in ``cluster.stack_process``,
whose start of ``matchday run`` raises it too.

Issue 12: ``bench.inventory``'s recovery phase printed "holding 10,000 reservations ..." and
then nothing for 60 s before a bare traceback. Now it prints how many of the reserves were
acknowledged every few seconds, and the error says which phase waited for what.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

from cluster.stack_process import Stalled

Say = Callable[[str], None]
Progress = Callable[[], str]


def _still(
    phase: str, waiting_for: str, started: float, limit_s: float, progress: Progress | None
) -> str:
    waited = time.monotonic() - started
    detail = f"; {progress()}" if progress else ""
    return f"{phase}: still waiting for {waiting_for} ({waited:.0f} of {limit_s:.0f} s){detail}"


@contextlib.asynccontextmanager
async def bounded(
    say: Say, phase: str, waiting_for: str, limit_s: float,
    progress: Progress | None = None, every_s: float = 10.0,
) -> AsyncIterator[None]:  # fmt: skip
    """``async with bounded(...)``: the body gets ``limit_s`` seconds; meanwhile a line every
    ``every_s`` says what it still waits for; past the limit it is cancelled and
    :class:`Stalled` raised."""
    started = time.monotonic()

    async def tick() -> None:
        while True:
            await asyncio.sleep(every_s)
            say(_still(phase, waiting_for, started, limit_s, progress))

    ticker = asyncio.create_task(tick())
    try:
        async with asyncio.timeout(limit_s) as cm:
            yield
    except TimeoutError as exc:
        if not cm.expired():
            raise
        raise Stalled(phase, waiting_for, limit_s, progress() if progress else "") from exc
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


@contextlib.contextmanager
def bounded_sync(
    say: Say, phase: str, waiting_for: str, limit_s: float, on_stall: Callable[[], None],
    progress: Progress | None = None, every_s: float = 10.0,
) -> Iterator[None]:  # fmt: skip
    """The blocking twin of :func:`bounded`: past ``limit_s`` a watchdog thread calls
    ``on_stall`` (which must unblock the body, e.g. kill the process it reads from), and
    :class:`Stalled` is raised when the body returns."""
    started = time.monotonic()
    done = threading.Event()
    stalled = threading.Event()

    def watchdog() -> None:
        while not done.wait(min(every_s, max(0.0, started + limit_s - time.monotonic()))):
            if time.monotonic() >= started + limit_s:
                stalled.set()
                on_stall()
                return
            say(_still(phase, waiting_for, started, limit_s, progress))

    thread = threading.Thread(target=watchdog, name=f"watchdog {phase}", daemon=True)
    thread.start()
    try:
        yield
    except Exception as exc:
        if stalled.is_set():  # the body failed because on_stall stopped what it waited on
            raise Stalled(phase, waiting_for, limit_s, progress() if progress else "") from exc
        raise
    finally:
        done.set()
        thread.join()
    if stalled.is_set():
        raise Stalled(phase, waiting_for, limit_s, progress() if progress else "")
