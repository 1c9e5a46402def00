"""Shared helpers for beand's service integration tests (Tests/integration/1x-beand-*.sh).

Standard library only. Every daemon a test starts is stopped by the test (by its pid), and every
temporary directory is removed, also on failure.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BEAND = os.path.join(os.environ.get("BEAND_BIN", ".build/debug"), "beand")


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok: " + message, flush=True)


class TempDir:
    """A temp dir others can traverse (0755), so a test client running as nobody reaches sockets."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="beand-test-")
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def own_group():
    import grp
    return grp.getgrgid(os.getgid()).gr_name


def write_config(directory, extra="", control_group=None, admin_group=None, log_target="stderr",
                 idle_timeout_s=60, drain_timeout_ms=2000, name="beand.toml"):
    # Default: the test's own group, so the daemon can chown its sockets without root.
    control_group = control_group or own_group()
    admin_group = admin_group or own_group()
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f"""[daemon]
state_dir = "{directory}"
drain_timeout_ms = {drain_timeout_ms}
[log]
target = "{log_target}"
level = "info"
[control]
socket = "{directory}/control.sock"
group = "{control_group}"
admin_group = "{admin_group}"
idle_timeout_s = {idle_timeout_s}
[rejects]
socket = "{directory}/rejects.sock"
group = "{control_group}"
{extra}""")
    return path


class Daemon:
    """beand running on a config; `stop()` sends SIGTERM and returns (exit code, seconds taken)."""

    def __init__(self, config, env=None, stderr=None):
        self.config = config
        self.directory = os.path.dirname(config)
        self.control = os.path.join(self.directory, "control.sock")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        full_env.pop("WATCHDOG_PID", None)
        full_env.update(env or {})
        self.stderr_path = os.path.join(self.directory, "beand.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen([BEAND, "--config", config], env=full_env, stderr=self.stderr,
                                        stdout=self.stderr)

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"beand exited early with {self.process.returncode}: {self.log()}")
            try:
                if request(self.control, {"command": "ping"}, timeout=1).get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        fail("beand did not answer ping within %ss: %s" % (timeout, self.log()))

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        start = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            fail("beand did not exit within %ss of signal %s" % (timeout, sig))
        return code, time.monotonic() - start

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed after %r" % data[:200])
        data += chunk
    return data


def request(path, obj, timeout=5):
    with connect(path, timeout) as s:
        s.sendall(json.dumps(obj).encode() + b"\n")
        return json.loads(read_line(s))


# ---------------------------------------------------------------- journald
JOURNAL_DIR = "/run/systemd/journal"
JOURNAL_SOCKET = JOURNAL_DIR + "/socket"
JOURNALD = "/lib/systemd/systemd-journald"


def journald_running():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(JOURNAL_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Journald:
    """A real journald for the test: the running one, or /lib/systemd/systemd-journald started here
    (root only; exits 77 otherwise) and stopped again on exit, removing the sockets it created."""

    def __enter__(self):
        self.started = None
        if journald_running():
            return self
        if os.geteuid() != 0 or not os.access(JOURNALD, os.X_OK):
            print("SKIP: no journald running and cannot start %s (need root)" % JOURNALD)
            sys.exit(77)
        os.makedirs(JOURNAL_DIR, exist_ok=True)
        self.before = set(os.listdir(JOURNAL_DIR))
        self.started = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not journald_running():
            if time.monotonic() > deadline or self.started.poll() is not None:
                self.started.kill()
                fail("systemd-journald did not come up")
            time.sleep(0.05)
        print("started systemd-journald (pid %d) for this test" % self.started.pid)
        return self

    def __exit__(self, *exc):
        if self.started is None:
            return False
        self.started.send_signal(signal.SIGTERM)
        try:
            self.started.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait()
        for name in [n for n in os.listdir(JOURNAL_DIR) if n not in self.before]:
            path = os.path.join(JOURNAL_DIR, name)
            if name != "kernel-seqnum" and os.path.exists(path):
                os.unlink(path)
        print("stopped systemd-journald (pid %d), removed its sockets" % self.started.pid)
        return False


# Entries older than this test are never ours: the journal keeps the entries of earlier runs, and a
# busy machine reuses PIDs, so `_PID=` alone can match another, long-gone beand.
TEST_STARTED_USEC = int(time.time() * 1_000_000)


def journal_entries(pid, want, message_id=None, timeout=15, since_usec=None):
    """The JSON entries of process `pid` (optionally one MESSAGE_ID) written since this test
    started (or `since_usec`), polled until `want` arrived."""
    since = TEST_STARTED_USEC if since_usec is None else since_usec
    deadline = time.monotonic() + timeout
    while True:
        subprocess.run(["journalctl", "--sync"], capture_output=True, timeout=10)
        match = ["MESSAGE_ID=" + message_id] if message_id else []
        out = subprocess.run(["journalctl", "-o", "json", "--no-pager", "--since=@%d" % (since // 1_000_000 - 1),
                              "_PID=%d" % pid, *match],
                             capture_output=True, timeout=30).stdout.decode()
        found = [e for e in (json.loads(l) for l in out.splitlines() if l.strip())
                 if int(e.get("__REALTIME_TIMESTAMP", "0")) >= since]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
