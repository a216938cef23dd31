"""Fixtures shared by the black-box suites (api/, lambda_e2e/).

They run the real binaries as processes: the authctl built by `cargo build`
(nothing here builds it), processes stopped with everything they started on
every exit path, and the tools installed beside this Python (scripts/test's
.venv: schemathesis, cargo-lambda).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
VENV_BIN = Path(sys.executable).parent
SUMMARY = pytest.StashKey[list]()
LOGS = pytest.StashKey[list]()


def pytest_configure(config):
    # SIGTERM unwinds like Ctrl-C, so session teardown still stops the
    # processes started below (they run in sessions of their own and would
    # not get the signal).
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def root():
    """The repository's top directory."""
    return ROOT


@pytest.fixture(scope="session")
def target():
    """Cargo's target directory, where the binaries are and the logs go."""
    return TARGET


@pytest.fixture(scope="session")
def venv_bin():
    """The directory of the test tools (schemathesis, cargo-lambda)."""
    return VENV_BIN


@pytest.fixture(scope="session")
def authctl():
    """The debug authctl binary."""
    path = TARGET / "debug" / "authctl"
    if not path.exists():
        pytest.fail(f"{path} is missing: run cargo build --workspace first", pytrace=False)
    return path


@pytest.fixture(scope="session")
def run():
    """Runs a command to the end: its stdout, or a failure with its output."""
    def run(cmd, timeout=120, **kwargs):
        cmd = [str(c) for c in cmd]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}{done.stdout}", pytrace=False)
        return done.stdout
    return run


@pytest.fixture(scope="session")
def make_key(authctl, run):
    """`authctl keys create` with `scopes` (read and write unless given) in
    the given store (`--data-dir DIR` or `--table NAME`): its JSON (api_key,
    key_id, ...)."""
    def make_key(name, *store, scopes="read write"):
        return json.loads(run([authctl, "keys", "create", "--name", name, "--scopes", scopes,
                               "--json", *store], timeout=30))
    return make_key


@pytest.fixture(scope="session")
def free_port():
    """A loopback port nothing listens on right now."""
    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return free_port


@pytest.fixture(scope="session")
def spawn(pytestconfig):
    """A context manager running a command in a session of its own, stderr
    (and stdout, unless piped for reading) into a log whose last lines are
    printed if the run fails; on exit the command and every process it
    started are stopped."""
    @contextmanager
    def spawn(cmd, log, *, read_stdout=False, env=None):
        pytestconfig.stash.setdefault(LOGS, []).append(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            process = subprocess.Popen(
                [str(c) for c in cmd], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if read_stdout else out, stderr=out, text=True,
                start_new_session=True,
            )
            try:
                yield process
            finally:
                stop_tree(process)
    return spawn


@pytest.fixture(scope="session")
def summary(pytestconfig):
    """Lines printed at the end of the run: figures worth seeing on a pass."""
    return pytestconfig.stash.setdefault(SUMMARY, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)
    if exitstatus != 0:
        for log in config.stash.get(LOGS, []):
            terminalreporter.section(f"last lines of {log}")
            terminalreporter.write_line("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


@pytest.fixture(scope="session")
def wait_for_url():
    """Waits until a URL answers with any HTTP status; fails if the process
    serving it exits first or the time runs out."""
    def wait_for_url(url, process, seconds, log):
        deadline = time.monotonic() + seconds
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"{process.args[0]} exited ({process.returncode}); see {log}", pytrace=False)
                if time.monotonic() > deadline:
                    pytest.fail(f"{url} did not answer in {seconds} s; see {log}", pytrace=False)
                time.sleep(0.2)
    return wait_for_url


def stop_tree(process):
    """SIGTERM to the process group, SIGKILL if it lingers, then SIGKILL to
    any descendant that had moved to a group of its own."""
    pids = descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def descendants(root):
    """Every process below root, from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
