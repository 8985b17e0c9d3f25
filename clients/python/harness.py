"""What the Python client's tests and walkthrough and the Python load benchmark share: a real
`bulkhead serve` process on 127.0.0.1 with an ephemeral port and a fresh data directory, stopped with
SIGTERM; and, for the load benchmark's raw grpcio calls, Python stubs generated from
`proto/bulkhead/v1/*.proto` with grpcio-tools into a temporary directory.

Secrets stay out of every output: the admin token is read from the file the server's first start
writes into its data directory (`dev-admin.token`, mode 0600) and API keys live only in variables;
neither is printed, and `BulkheadServer.log` lets callers check the server never logged them.
"""

import importlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"


def generate_stubs(out_dir):
    """Compiles every `proto/bulkhead/v1/*.proto` into `out_dir` and imports the result.

    Returns `(pb2, pb2_grpc)`, the message and service modules of `bulkhead.v1`. `out_dir` is put on
    `sys.path`; a process started later (multiprocessing with spawn) calls `import_stubs(out_dir)`.
    """
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "bulkhead" / "v1").glob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO_ROOT / 'bulkhead' / 'v1'}")
    # grpc_tools ships the well-known types (google/protobuf/*.proto) beside itself.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *protos,
        ]
    )
    if status != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with status {status}")
    return import_stubs(out_dir)


def import_stubs(out_dir):
    """Imports stubs that `generate_stubs` wrote into `out_dir`."""
    out_dir = str(out_dir)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("bulkhead.v1.bulkhead_pb2")
    pb2_grpc = importlib.import_module("bulkhead.v1.bulkhead_pb2_grpc")
    return pb2, pb2_grpc


def bearer(token):
    """The call metadata that carries a credential."""
    return (("authorization", f"Bearer {token}"),)


def _die_with_parent():
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, so a harness killed
    with SIGKILL does not leave a server behind. Elsewhere this is a no-op."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def sigterm_raises():
    """Turns SIGTERM into SystemExit, so that `finally` blocks (which stop the server) run."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


class BulkheadServer:
    """`bulkhead --data-dir DIR serve --listen 127.0.0.1:0` as a context manager.

    The server's first start generates a development master key and admin token inside the data
    directory; its log line `bulkhead serving ... address=HOST:PORT` says which port it bound. Exiting
    the context sends SIGTERM and waits; `stop()` does the same and checks the clean exit (status 0,
    "store flushed").
    """

    STARTUP_TIMEOUT_S = 60
    STOP_TIMEOUT_S = 60

    def __init__(self, binary, data_dir, extra_args=()):
        self.binary = str(binary)
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.address = None
        self.process = None
        self._lines = []
        self._lines_lock = threading.Lock()
        self._reader = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.process is not None and self.process.poll() is None:
            if exc_type is None:
                self.stop()
            else:
                self._terminate()

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"no bulkhead binary at {self.binary}: cargo build --release -p bulkhead-cli")
        # The server must pick its development key and token from the data directory, and log at its
        # default level, whatever the caller's environment says.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
        env["NO_COLOR"] = "1"
        args = [self.binary, "--data-dir", str(self.data_dir), "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", *self.extra_args]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        lines = queue.Queue()
        self._reader = threading.Thread(target=self._drain, args=(lines,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.STARTUP_TIMEOUT_S
        while self.address is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._terminate()
                raise RuntimeError(f"bulkhead serve did not report its address in time:\n{self.log()}")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.process.wait()
                raise RuntimeError(f"bulkhead serve exited with {self.process.returncode}:\n{self.log()}")
            if "bulkhead serving" in line:
                found = re.search(r"address=(\S+)", line)
                if not found:
                    self._terminate()
                    raise RuntimeError(f"no address in the serving line: {line}")
                self.address = found.group(1)

    def _drain(self, lines):
        """Keeps reading the server's log (so its pipe never fills), line by line."""
        for line in self.process.stderr:
            with self._lines_lock:
                self._lines.append(line)
            lines.put(line)
        lines.put(None)

    def log(self):
        """Everything the server has logged so far."""
        with self._lines_lock:
            return "".join(self._lines)

    def admin_token(self):
        """The development admin token the server's first start wrote into the data directory."""
        return (self.data_dir / "dev-admin.token").read_text().strip()

    def stop(self):
        """SIGTERM, then checks that the server finished cleanly and flushed its store."""
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=self.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"bulkhead serve did not stop within {self.STOP_TIMEOUT_S} s of SIGTERM")
        self._reader.join(timeout=5)
        if status != 0:
            raise RuntimeError(f"bulkhead serve exited with {status} after SIGTERM:\n{self.log()}")
        if "store flushed" not in self.log():
            raise RuntimeError(f"bulkhead serve stopped without flushing:\n{self.log()}")

    def _terminate(self):
        """Stops the server on a failure path: SIGTERM, then SIGKILL if it lingers."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def default_binary():
    """The release binary: $BULKHEAD_BIN, else $CARGO_TARGET_DIR (or the scripts' default) /release/bulkhead."""
    if os.environ.get("BULKHEAD_BIN"):
        return Path(os.environ["BULKHEAD_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "bulkhead" / "target")
    return Path(target) / "release" / "bulkhead"
