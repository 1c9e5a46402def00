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
