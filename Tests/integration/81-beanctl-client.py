#!/usr/bin/env python3
"""beanctl's client side against fake control-socket peers: every failure mode gives one clear
line and its documented exit code (beanctl(1) EXIT STATUS). The real daemon is covered by the
service tests; here the peer misbehaves on purpose."""
import json, os, socket, subprocess, sys, tempfile, threading, time

BIN = os.environ.get("BEAND_BIN", ".build/debug")
BEANCTL = os.path.join(BIN, "beanctl")
failures = []

def run(args, user=None, timeout=20):
    cmd = [BEANCTL] + args
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr

def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        failures.append(name)

class FakeDaemon:
    """Answers each request line with what `reply(request_dict)` returns (raw bytes or None)."""
    def __init__(self, path, reply, mode=0o666):
        self.path, self.reply = path, reply
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, mode)
        self.sock.listen(16)
        self.requests = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        buf = b""
        with conn:
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            line = buf.split(b"\n", 1)[0]
            req = json.loads(line)
            self.requests.append(req)
            out = self.reply(req)
            if out is None:
                time.sleep(30)
                return
            conn.sendall(out)

    def close(self):
        self.stop = True
        self.sock.close()

with tempfile.TemporaryDirectory() as d:
    os.chmod(d, 0o755)
    missing = os.path.join(d, "missing.sock")
    rc, out, err = run(["--socket", missing, "status"])
    check("missing socket -> 69", rc == 69, (rc, err))
    check("missing socket message names path", missing in err and err.count("\n") == 1, err)

    refused = os.path.join(d, "refused.sock")
    s = socket.socket(socket.AF_UNIX); s.bind(refused); s.close()  # bound, never listening
    rc, out, err = run(["status", "--socket", refused])
    check("refused socket -> 69", rc == 69 and "not running" in err, (rc, err))

    def good(req):
        cmd = req["command"]
        result = {"ping": {"pong": True},
                  "version": {"version": "9.9.9", "proto": 1},
                  "status": {"version": "9.9.9", "uptime_s": 75.5, "cameras": [{"name": "cam0", "state": None, "fps": None}],
                             "beans_total": 0, "rejects_total": 0, "beans_per_s": None,
                             "store": {"path": "/s", "generation": None, "vectors": None, "dim": None, "labels": None},
                             "encoder": {"model": "/m.onnx", "fingerprint": None}},
                  "reload": {"reloaded": True, "generation": 7}}.get(cmd)
        if result is None:
            return (json.dumps({"ok": False, "proto": 1, "error": f"unknown command '{cmd}'"}) + "\n").encode()
        if cmd == "reload" and req.get("_deny"):
            pass
        return (json.dumps({"ok": True, "proto": 1, "command": cmd, "result": result}) + "\n").encode()

    path = os.path.join(d, "good.sock")
    fake = FakeDaemon(path, good)
    rc, out, err = run(["--socket", path, "ping"])
    check("ping -> 0", rc == 0 and "alive" in out, (rc, out, err))
    check("request carries proto 1", fake.requests and fake.requests[-1].get("proto") == 1, fake.requests)
    rc, out, err = run(["--socket", path, "status"])
    lines = out.strip().splitlines()
    colons = {l.index(" : ") for l in lines if " : " in l}
    check("status human output aligned Key : value", rc == 0 and len(lines) >= 8 and len(colons) == 1, out)
    check("null fields shown as '-', not 0", any(l.startswith("Beans/s") and l.endswith(": -") for l in lines), out)
    check("uptime formatted", any(l.startswith("Uptime") and "1m 15s" in l for l in lines), out)
    rc, out, err = run(["--socket", path, "status", "--json"])
    js = json.loads(out)
    check("status --json is the daemon's result", rc == 0 and js["uptime_s"] == 75.5 and js["beans_per_s"] is None, out)
    rc, out, err = run(["--socket", path, "reload"])
    check("reload -> 0 and shows generation", rc == 0 and "generation 7" in out, (rc, out, err))
    rc, out, err = run(["--socket", path, "version", "--json"])
    check("version --json", rc == 0 and json.loads(out)["version"] == "9.9.9", out)
    rc, out, err = run(["--socket", path, "frobnicate"])
    check("unknown subcommand -> 64", rc == 64, (rc, err))
    fake.close()

    denied = os.path.join(d, "denied.sock")
    fake = FakeDaemon(denied, lambda req: (json.dumps({"ok": False, "proto": 1, "error": "permission denied"}) + "\n").encode())
    rc, out, err = run(["--socket", denied, "reload"])
    check("daemon's permission denied -> 77", rc == 77 and "permission denied" in err, (rc, err))
    fake.close()

    private = os.path.join(d, "private.sock")
    fake = FakeDaemon(private, good, mode=0o600)
    rc, out, err = run(["--socket", private, "status"], user=65534)
    check("socket not accessible -> 77", rc == 77 and "permission denied" in err, (rc, err))
    fake.close()

    failing = os.path.join(d, "failing.sock")
    fake = FakeDaemon(failing, lambda req: (json.dumps({"ok": False, "proto": 1, "error": "store /x: checksum mismatch"}) + "\n").encode())
    rc, out, err = run(["--socket", failing, "reload"])
    check("daemon error -> 1 with its message", rc == 1 and "checksum mismatch" in err, (rc, err))
    fake.close()

    garbage = os.path.join(d, "garbage.sock")
    fake = FakeDaemon(garbage, lambda req: b"\x00\xffnot json\n")
    rc, out, err = run(["--socket", garbage, "status"])
    check("unreadable answer -> 76", rc == 76, (rc, err))
    fake.close()

    silent = os.path.join(d, "silent.sock")
    fake = FakeDaemon(silent, lambda req: None)
    t0 = time.monotonic()
    rc, out, err = run(["--socket", silent, "--timeout", "1", "status"])
    check("no answer -> 75 after --timeout", rc == 75 and time.monotonic() - t0 < 5, (rc, err))
    fake.close()

print(f"beanctl client: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
