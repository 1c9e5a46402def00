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
                             "encoder": {"model": "/m.onnx", "fingerprint": None},
                             "policy": {"mode": "score", "k": 64, "good_labels": ["Normal"], "reject_share": 0.62,
                                        "label_reject_shares": {"Insect": 0.2}, "one_class_distance": 0.3,
                                        "unknown_distance": None, "unknown_action": "reject", "reported_neighbors": 8}},
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
    check("policy on one line", any(l.startswith("Policy") and l.endswith(": score, k 64, reject share 0.62, label:Insect 0.20") for l in lines), out)
    rc, out, err = run(["--socket", path, "status", "--json"])
    js = json.loads(out)
    check("status --json is the daemon's result", rc == 0 and js["uptime_s"] == 75.5 and js["beans_per_s"] is None, out)
    rc, out, err = run(["--socket", path, "reload"])
    check("reload -> 0 and shows generation", rc == 0 and "generation 7" in out, (rc, out, err))
    rc, out, err = run(["--socket", path, "version", "--json"])
    check("version --json", rc == 0 and json.loads(out)["version"] == "9.9.9", out)
    rc, out, err = run(["--socket", path, "watch", "--count", "2", "--interval", "0.2"])
    blocks = [b for b in out.split("beand status, every") if b.strip()]
    check("watch --count 2 prints two status blocks", rc == 0 and len(blocks) == 2 and all("Uptime" in b for b in blocks), (rc, out, err))
    rc, out, err = run(["--socket", path, "watch", "--interval", "0"])
    check("watch rejects a zero interval (usage 64)", rc == 64, (rc, err))
    rc, out, err = run(["--socket", path, "frobnicate"])
    check("unknown subcommand -> 64", rc == 64, (rc, err))
    fake.close()

    def threshold(req):
        if req.get("command") == "set-threshold" and req.get("key") == "label:Black" and req.get("value") == "0.4":
            return (json.dumps({"ok": True, "proto": 1, "command": "set-threshold",
                                "result": {"key": "label:Black", "old": None, "new": 0.4,
                                           "note": "in score mode a label's threshold only adds rejects"}}) + "\n").encode()
        return (json.dumps({"ok": False, "proto": 1, "error": f"bad request {req}"}) + "\n").encode()
    tpath = os.path.join(d, "threshold.sock")
    fake = FakeDaemon(tpath, threshold)
    rc, out, err = run(["--socket", tpath, "set", "threshold", "label:Black", "0.4"])
    check("set threshold sends set-threshold key/value and prints the change and the daemon's note",
          rc == 0 and "threshold label:Black changed from default to 0.4" in out
          and "note: in score mode a label's threshold only adds rejects" in out, (rc, out, err, fake.requests))
    rc, out, err = run(["--socket", tpath, "set", "threshold", "label:Black"])
    check("set threshold without value -> 64", rc == 64, (rc, err))
    fake.close()

    # beanctl tail against a reject stream that replays after resume_after and then ends.
    rpath = os.path.join(d, "rejects.sock")
    rs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); rs.bind(rpath); rs.listen(4)
    seen_first_line = []
    def stream_server():
        conn, _ = rs.accept()
        with conn:
            conn.settimeout(2)
            buf = b""
            while b"\n" not in buf:
                buf += conn.recv(100)
            seen_first_line.append(json.loads(buf.split(b"\n")[0]))
            ev = lambda seq, bean, label: {"type": "reject", "seq": seq, "bean_id": bean, "camera": "cam0", "frame_seq": 40 + seq,
                    "lane": 1, "verdict": "reject", "reason": "vote", "label": label, "score": 0.75,
                    "captured_mono_us": 1000, "decided_mono_us": 4500, "eject_at_mono_us": 9000, "time_unix_us": 1,
                    "neighbors": [{"label": label, "distance": 0.125, "vector_id": 7}]}
            lines = [ev(8, 3, "Black"), {"type": "gap", "from_seq": 9, "to_seq": 10, "count": 2, "reason": "overflow"}, ev(11, 4, "Sour"), ev(12, 5, "Black")]
            conn.sendall(b"".join((json.dumps(l) + "\n").encode() for l in lines))
            time.sleep(1)
    th = threading.Thread(target=stream_server, daemon=True); th.start()
    rc, out, err = run(["tail", "--rejects-socket", rpath, "--resume-after", "7", "--count", "3"])
    th.join(3)
    lines = out.strip().splitlines()
    check("tail sends resume_after first", seen_first_line == [{"resume_after": 7}], seen_first_line)
    check("tail prints 3 rejects and the gap, then exits", rc == 0 and len(lines) == 4 and "gap" in lines[1] and "9" in lines[1], (rc, out, err))
    check("tail line is human-readable", lines and "#8 cam0 bean 3" in lines[0] and "REJECT Black" in lines[0] and "3.5 ms" in lines[0] and "Black 0.125" in lines[0], lines[:1])
    rs.close()
    rc, out, err = run(["tail", "--rejects-socket", os.path.join(d, "nostream.sock")])
    check("tail without daemon -> 69", rc == 69, (rc, err))

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
