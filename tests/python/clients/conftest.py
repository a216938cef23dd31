"""The Python client against the real `authctl serve` (60 s tokens, a 30 s
refresh window), one server per test on a fresh embedded store, logins
counted in the server's own request log. The client is imported from
clients/python/src, as it is in the repository (no install step)."""

import asyncio
import os
import queue
import re
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

import bearer_auth  # noqa: E402
from request_log import answered  # noqa: E402

API_KEY = re.compile(r"\bbauth_[0-9a-f]{16}_[0-9a-f]{64}_[0-9a-f]{8}\b")
TOKEN_TTL = 60
REFRESH_WINDOW = 30
PATIENCE = 120
"""Seconds a condition may take to come true on a busy machine."""


class Server:
    """`authctl serve` that a test can stop, restart, pause and count."""

    def __init__(self, authctl, spawn, directory):
        self._authctl, self._spawn, self._dir = authctl, spawn, directory
        self._stack = ExitStack()
        self._logs = []
        self.process = None
        self.base, printed = self._start("127.0.0.1:0")
        # The first key printed is the starter key; the console's root key follows.
        self.key = API_KEY.search(printed).group(0)

    def _start(self, addr):
        log = self._dir / f"serve-{len(self._logs) + 1}.log"
        self._logs.append(log)
        env = {k: v for k, v in os.environ.items() if k not in ("TABLE_NAME", "SIGNING_SECRET_ARN", "ISSUER")}
        env.update(TOKEN_TTL_SECONDS=str(TOKEN_TTL), REFRESH_WINDOW_SECONDS=str(REFRESH_WINDOW), RUST_LOG="info")
        command = [self._authctl, "serve", "--addr", addr, "--data-dir", self._dir / "data"]
        self.process = self._stack.enter_context(self._spawn(command, log, read_stdout=True, env=env))
        lines = queue.Queue()
        # Reads stdout to its end, so the server never blocks on a full pipe.
        threading.Thread(target=lambda out=self.process.stdout: [*map(lines.put, out), lines.put(None)],
                         daemon=True).start()
        printed, deadline = [], time.monotonic() + PATIENCE
        while (line := lines.get(timeout=max(deadline - time.monotonic(), 0.1))) is not None:
            printed.append(line)
            if m := re.match(r"listening on (http://\S+)", line):
                return m.group(1), "".join(printed)
        pytest.fail("authctl serve exited before listening:\n" + "".join(printed), pytrace=False)

    def stop(self):
        """Stops it; nothing is answered after this returns."""
        self._stack.close()

    def restart(self):
        """Starts it again on the same port and data dir."""
        self.stop()
        base, _ = self._start(self.base.removeprefix("http://"))
        assert base == self.base

    def pause(self):
        """SIGSTOP: connections are accepted (by the kernel), nothing answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        """SIGCONT."""
        os.kill(self.process.pid, signal.SIGCONT)

    def count(self, route):
        """Requests to `route` it answered, from its request logs."""
        return sum(answered(log, route) for log in self._logs)

    def verify(self, token):
        """`GET /auth/verify` with `token`: status and body."""
        import httpx

        response = httpx.get(f"{self.base}/auth/verify", headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.json()

    def revoke(self, **body):
        """`POST /auth/revoke` with the starter key and `body`; must succeed."""
        import httpx

        response = httpx.post(f"{self.base}/auth/revoke", json={"api_key": self.key, **body})
        assert response.status_code == 200, response.text


@pytest.fixture
def server(authctl, spawn, tmp_path):
    """A server of this test's own."""
    started = Server(authctl, spawn, tmp_path)
    try:
        yield started
    finally:
        if started.process is not None and started.process.poll() is None:
            started.resume()
        started.stop()


class Clock:
    """The monotonic clock plus what `advance` added: the source's `_clock`."""

    def __init__(self):
        self.ahead = 0.0

    def __call__(self):
        return time.monotonic() + self.ahead

    def advance(self, seconds):
        self.ahead += seconds


@pytest.fixture
def clock():
    return Clock()


class Calls:
    """One way of calling a source, so that a test runs on both kinds:
    `sync` (TokenSource) and `async` (AsyncTokenSource, on a loop that only
    runs while a call does, as in a program that awaits it)."""

    def __init__(self, kind, *args, **kwargs):
        self.kind = kind
        if kind == "sync":
            self.source = bearer_auth.TokenSource(*args, **kwargs)
            self.loop = None
        else:
            self.loop = asyncio.new_event_loop()
            self.source = bearer_auth.AsyncTokenSource(*args, **kwargs)

    def run(self, value):
        return self.loop.run_until_complete(value) if self.loop else value

    def token(self):
        return self.run(self.source.token() if self.loop else self.source.token())

    def revoke(self):
        return self.run(self.source.revoke() if self.loop else self.source.revoke())

    def settle(self):
        """Lets a background refresh (async) run; nothing to do for sync,
        whose refresh runs in the calling thread."""
        if self.loop:
            self.loop.run_until_complete(asyncio.sleep(0.05))

    def close(self):
        if self.loop:
            self.loop.run_until_complete(self.source.aclose())
            self.loop.close()
        else:
            self.source.close()


@pytest.fixture(params=["sync", "async"])
def calls(request):
    """Makes sources of this test's kind (sync or async); closes them after."""
    made = []

    def make(*args, **kwargs):
        made.append(Calls(request.param, *args, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def until(what, condition, step=None):
    """Waits until `condition()` holds, running `step` (or sleeping 50 ms)
    between checks; fails after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {PATIENCE} s: {what}", pytrace=False)
        (step or (lambda: time.sleep(0.05)))()


def records(caplog, message, session_id):
    """The client's log records with `message` in them, for one session."""
    return [r for r in caplog.records
            if r.name == "bearer_auth" and message in r.getMessage() and getattr(r, "session_id", None) == session_id]
