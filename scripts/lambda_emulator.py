"""A minimal Lambda runtime API emulator, for cold-start figures (scripts/bench).

It serves the calls a custom runtime makes (the `bootstrap` of a
provided.al2023 function, here through lambda_runtime):

  GET  /2018-06-01/runtime/invocation/next              the next event
  POST /2018-06-01/runtime/invocation/{id}/response     its answer
  POST /2018-06-01/runtime/invocation/{id}/error        a handler error
  POST /2018-06-01/runtime/init/error                   an init failure

`cold_start` starts one bootstrap process with its events queued and times,
from just before the process is spawned: when it first asks for an event
(its init is done), when it answers that first event, and how long each
later (warm) event takes from hand-out to answer. Each run gets its own
emulator, listening before the clock starts, so the emulator's own start is
never counted; its per-call cost is what `self_check` measures.
"""

import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


@dataclass
class Sample:
    """One cold start, and the warm events after it."""

    init_ms: float = 0.0
    first_request_ms: float = 0.0
    first_answer_ms: float = 0.0
    warm_request_ms: list = field(default_factory=list)
    status: int = 0
    body: str = ""
    error: str = ""
    # Peak resident memory of the bootstrap (ru_maxrss: KiB on Linux).
    max_rss_kib: int = 0


class _Run:
    """The events of one process, handed out in order."""

    def __init__(self, events):
        self.events = [(str(uuid.uuid4()), json.dumps(e).encode()) for e in events]
        self.next = 0
        self.handed_at = {}
        self.answered_at = {}
        self.answers = {}
        self.error = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.closed = threading.Event()

    def take(self):
        with self.lock:
            if self.next >= len(self.events):
                return None
            request_id, event = self.events[self.next]
            self.next += 1
            self.handed_at[request_id] = time.perf_counter_ns()
            return request_id, event

    def answered(self, request_id, at, body):
        self.answered_at[request_id], self.answers[request_id] = at, body
        if len(self.answers) == len(self.events):
            self.done.set()

    def failed(self, at, error):
        self.answered_at.setdefault("error", at)
        self.error = error
        self.done.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        run = self.server.run
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, b'{"errorMessage": "not found"}')
            return
        taken = run.take()
        if taken is None:
            # No more events: hold the call until the run ends.
            run.closed.wait()
            self.close_connection = True
            return
        request_id, event = taken
        deadline = int(time.time() * 1000) + 30_000
        self._reply(200, event, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn",
             "arn:aws:lambda:us-east-1:123456789012:function:bench"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
        ])

    def do_POST(self):  # noqa: N802
        at = time.perf_counter_ns()
        body = self._body()
        run = self.server.run
        parts = self.path[len(PREFIX):].strip("/").split("/")
        if parts[:1] == ["invocation"] and len(parts) == 3 and parts[1] in run.handed_at:
            if parts[2] == "response":
                run.answered(parts[1], at, body)
            elif parts[2] == "error":
                run.failed(at, body.decode(errors="replace") or "error")
            else:
                self._reply(404, b'{"errorMessage": "unknown path"}')
                return
        elif parts == ["init", "error"]:
            run.failed(at, "init error: " + body.decode(errors="replace"))
        else:
            self._reply(404, b'{"errorMessage": "unknown path"}')
            return
        self._reply(202, b'{"status": "OK"}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed function leaves its last call hanging up: not an error here.
        pass


class Emulator:
    """The runtime API on a free loopback port, for one run of one function.
    Every run gets a fresh server, so that a call a killed process left in the
    listen queue can never take the next run's event."""

    def __init__(self, run):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.run = run
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.server.run.closed.set()
        self.server.shutdown()
        self.server.server_close()
        return False

    @property
    def address(self):
        host, port = self.server.server_address
        return f"{host}:{port}"


def cold_start(binary, event, env, warm_events=0, timeout=30.0):
    """Spawns `binary` with `event` queued 1 + `warm_events` times on a fresh
    emulator (already listening when the clock starts); a Sample of its
    answers. `env` gets AWS_LAMBDA_RUNTIME_API."""
    run = _Run([event] * (1 + warm_events))
    sample = Sample()
    with Emulator(run) as emulator, tempfile.TemporaryFile() as log:
        env = {**env, "AWS_LAMBDA_RUNTIME_API": emulator.address}
        started = time.perf_counter_ns()
        proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

        def output():
            log.seek(0)
            return log.read()[-2000:].decode(errors="replace")

        try:
            if not run.done.wait(timeout):
                sample.error = f"no answer within {timeout:.0f} s; output: {output()}"
                return sample
            if run.error:
                sample.error = f"{run.error}; output: {output()}"
                return sample
            ids = [request_id for request_id, _ in run.events]
            first = ids[0]
            sample.init_ms = (run.handed_at[first] - started) / 1e6
            sample.first_answer_ms = (run.answered_at[first] - started) / 1e6
            sample.first_request_ms = (run.answered_at[first] - run.handed_at[first]) / 1e6
            sample.warm_request_ms = [(run.answered_at[i] - run.handed_at[i]) / 1e6
                                      for i in ids[1:]]
            answer = json.loads(run.answers[first])
            sample.status = int(answer.get("statusCode", 0))
            sample.body = answer.get("body", "")
            return sample
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            sample.max_rss_kib = usage.ru_maxrss


def function_env(name, memory_mb=128):
    """The variables Lambda sets for a custom runtime, but AWS_LAMBDA_RUNTIME_API."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": "/var/task",
        "TZ": ":UTC",
    }


def self_check(rounds=50):
    """Median milliseconds of one GET next + POST response made by a Python
    client over a fresh connection each: the emulator's share of a
    first-request figure (an upper bound: the Rust runtime's client is faster
    than urllib)."""
    times = []
    for _ in range(rounds):
        run = _Run([{"ping": True}])
        with Emulator(run) as emulator:
            base = f"http://{emulator.address}{PREFIX}/invocation"
            t = time.perf_counter_ns()
            with urllib.request.urlopen(f"{base}/next", timeout=5) as r:
                request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
                r.read()
            request = urllib.request.Request(f"{base}/{request_id}/response", data=b"{}",
                                             method="POST")
            with urllib.request.urlopen(request, timeout=5) as r:
                r.read()
            times.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(times)
