"""One head check shared by every read that arrives while it is pending (single flight).

A read must be fresh with respect to every commit acknowledged before it arrived, on any instance.
On a store whose reads are round trips (PostgreSQL), asking the database once per read is the
price of that promise; `SharedCheck` pays it once per burst instead:

- a read arriving while no check runs starts one at once;
- a read arriving while a check runs must not be served by it (that check may have asked the
  database before the read arrived, i.e. before the commit the client saw was acknowledged), so it
  waits for the *next* check, which starts as soon as the running one ends and serves every read
  that arrived meanwhile.

So any number of concurrent reads cost at most two checks, and every read is served by a check that
started after it arrived. The check itself runs wherever its coroutine puts it (the service runs
the query in a worker thread, so a slow or unreachable database never stalls the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class SharedCheck:
    """Single-flight runner of `check`: `await wait()` returns after a check that started after the
    call has finished, raising what that check raised."""

    def __init__(self, check: Callable[[], Awaitable[None]]) -> None:
        self._check = check
        self._running: asyncio.Future[None] | None = None  # the check in flight
        self._next: asyncio.Future[None] | None = None  # the check that starts when it ends
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0  # checks started so far (for measurement)
        self.waits = 0  # reads served so far

    async def wait(self) -> None:
        """Return once a check that started after this call has finished."""
        self.waits += 1
        if self._running is None:
            done = self._running = self._start(None)
        else:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            done = self._next
        # A reader that goes away (its client disconnected) must not cancel the others' check.
        await asyncio.shield(done)

    def _start(self, done: asyncio.Future[None] | None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if done is None:
            done = loop.create_future()
        # Mark the outcome as retrieved even if every waiter went away before it came.
        done.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self.started += 1
        task = loop.create_task(self._run(done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return done

    async def _run(self, done: asyncio.Future[None]) -> None:
        try:
            await self._check()
        except asyncio.CancelledError:  # shutting down: nothing more is checked
            self._running, waiting, self._next = None, self._next, None
            for future in (done, waiting):
                if future is not None:
                    future.cancel()
            raise
        except Exception as e:  # every read this check serves gets the same error
            done.set_exception(e)
        else:
            done.set_result(None)
        waiting, self._next = self._next, None
        self._running = None if waiting is None else self._start(waiting)
