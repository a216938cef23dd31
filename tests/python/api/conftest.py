"""`authctl serve` started once per session on a free loopback port with a
fresh embedded store, and a root key with keys to manage made in that store
by authctl; its log and schemathesis' reports go to target/api-tests/."""

import os
import queue
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

API_KEY = re.compile(r"\bbauth_([0-9a-f]{16})_[0-9a-f]{64}_[0-9a-f]{8}\b")
ADMIN_SCOPES = "admin:keys:read admin:keys:write admin:audit:read"


@dataclass
class Server:
    base: str
    data_dir: Path
    starter_key: str
    printed: str
    """What it printed up to its `listening on` line."""

    @property
    def starter_client_id(self):
        return API_KEY.fullmatch(self.starter_key).group(1)


@pytest.fixture(scope="session")
def out(target):
    """target/api-tests/, emptied."""
    path = target / "api-tests"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def server(authctl, spawn, out, tmp_path_factory):
    """The server, once it has printed its address and starter key."""
    data_dir = tmp_path_factory.mktemp("authctl-data")
    with serve(authctl, spawn, out / "server.log", data_dir) as server:
        yield server


@contextmanager
def serve(authctl, spawn, log, data_dir, *args):
    """`authctl serve` on a free port and the embedded store in `data_dir`
    (whatever the environment says about AWS), with `args` added, until the
    block ends: its Server once it has printed its address and starter key."""
    env = {k: v for k, v in os.environ.items() if k not in ("TABLE_NAME", "SIGNING_SECRET_ARN", "ISSUER")}
    command = [authctl, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir, *args]
    with spawn(command, log, read_stdout=True, env=env) as process:
        lines = queue.Queue()
        threading.Thread(target=pump, args=(process.stdout, lines), daemon=True).start()
        base, starter_key, seen = None, None, []
        deadline = time.monotonic() + 30
        while (base is None or starter_key is None) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            if line is None:
                break
            seen.append(line)
            if m := re.search(r"listening on (http://127\.0\.0\.1:\d+)", line):
                base = m.group(1)
            # The starter key comes first; the console's root key after it.
            if starter_key is None and (m := API_KEY.search(line)):
                starter_key = m.group(0)
        if base is None or starter_key is None:
            pytest.fail("authctl serve printed no address and starter key:\n" + "".join(seen), pytrace=False)
        yield Server(base, data_dir, starter_key, "".join(seen))


@dataclass
class AdminKeys:
    root: str
    """An API key holding every admin scope."""
    root_id: str
    """Its key id."""
    live: list
    """Ids of keys it manages that are never revoked."""
    revoked: str
    """The id of the key that revokes go to (a revoke is sticky and idempotent)."""


@pytest.fixture(scope="session")
def admin_keys(server, make_key):
    """A root key and keys for it to manage, made by authctl in the server's store."""
    store = ("--data-dir", server.data_dir)
    root = make_key("schemathesis-root", *store, scopes=ADMIN_SCOPES)
    live = [make_key(f"schemathesis-managed-{i}", *store)["key_id"] for i in range(3)]
    revoked = make_key("schemathesis-revoked", *store)["key_id"]
    return AdminKeys(root["api_key"], root["key_id"], live, revoked)


def pump(stdout, lines):
    """Reads the server's stdout to the end, so it never blocks on a full pipe."""
    for line in stdout:
        lines.put(line)
    lines.put(None)
