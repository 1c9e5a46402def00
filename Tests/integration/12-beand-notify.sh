#!/usr/bin/env bash
# beand ↔ systemd notify protocol against a real NOTIFY_SOCKET datagram listener: READY=1 (after
# both sockets are bound), STATUS= every second, WATCHDOG=1, RELOADING=1+MONOTONIC_USEC … READY=1
# for SIGHUP, control reload and a failed reload, STOPPING=1; and no WATCHDOG=1 while a loop is
# wedged (debug-build hook BEAND_DEBUG_WEDGE_STATUS_AFTER_MS), over an abstract socket.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
PY="${BEAND_PY:-python3}"; [ -x "$PY" ] || PY=python3
export BEAND_BIN="${BEAND_BIN:-$ROOT/.build/debug}"
[ -x "$BEAND_BIN/beand" ] || { echo "SKIP: $BEAND_BIN/beand not built"; exit 77; }
case "$BEAND_BIN" in *release*) echo "SKIP: the wedge hook exists in debug builds only"; exit 77;; esac
exec "$PY" - "$ROOT" <<'PYEOF'
import os, re, signal, socket, sys, threading, time
sys.path.insert(0, os.path.join(sys.argv[1], "Tests/service-harness"))
from harness import *

class Listener:
    """Collects (time, message) datagrams from NOTIFY_SOCKET."""
    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        if not address.startswith("@"):
            os.chmod(address, 0o777)
        self.sock.settimeout(0.1)
        self.messages = []
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
    def loop(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))
    def wait_for(self, predicate, timeout, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (t, m) in enumerate(list(self.messages)):
                if i >= after and predicate(m):
                    return i
            time.sleep(0.02)
        fail("no notify message matching within %ss; got %r" % (timeout, [m for _, m in self.messages][-10:]))
    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()

def lines(m): return m.split("\n")

with TempDir() as d:
    cfg = write_config(d)
    listener = Listener(os.path.join(d, "notify.sock"))
    env = {"NOTIFY_SOCKET": os.path.join(d, "notify.sock"), "WATCHDOG_USEC": "1000000"}
    with Daemon(cfg, env=env) as daemon:
        ready = listener.wait_for(lambda m: "READY=1" in lines(m), 10)
        # Both sockets answer the moment READY=1 arrives.
        for name in ("control.sock", "rejects.sock"):
            s = connect(os.path.join(d, name)); s.close()
        check(True, "READY=1 sent with control and rejects sockets bound")
        check(listener.messages[ready][1].startswith("READY=1\nSTATUS=up "), "READY=1 carries the first STATUS=")
        time.sleep(3.2)
        statuses = [(t, m) for t, m in listener.messages[ready + 1:] if m.startswith("STATUS=")]
        check(len(statuses) >= 2, "STATUS= refreshed every second (%d in 3.2 s)" % len(statuses))
        check(all(re.fullmatch(r"STATUS=up \d+s; beans/s n/a; rejects n/a; cameras up n/a of 0", m) for _, m in statuses),
              "STATUS= line shows uptime and n/a for engine figures: %r" % statuses[-1][1])
        dogs = [t for t, m in listener.messages[ready + 1:] if m == "WATCHDOG=1"]
        check(len(dogs) >= 4, "WATCHDOG=1 every WATCHDOG_USEC/2 while healthy (%d in 3.2 s)" % len(dogs))

        def reload_round(trigger, expect_ok):
            start = len(listener.messages)
            result = trigger()
            i = listener.wait_for(lambda m: m.startswith("RELOADING=1\n"), 5, after=start)
            m = listener.messages[i][1]
            usec = re.search(r"MONOTONIC_USEC=(\d+)", m)
            now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            check(usec and 0 < now_usec - int(usec.group(1)) < 5_000_000, "RELOADING=1 with MONOTONIC_USEC (%s)" % m.replace("\n", " "))
            listener.wait_for(lambda m: "READY=1" in lines(m), 5, after=i + 1)
            check(True, "READY=1 after RELOADING=1")
            return result

        reload_round(lambda: daemon.process.send_signal(signal.SIGHUP), True)
        r = reload_round(lambda: request(daemon.control, {"command": "reload"}), True)
        check(r["ok"] and r["result"]["reloaded"], "control reload succeeds")
        # An invalid new config: reload fails, READY=1 still follows, old config stays in force.
        good = open(cfg).read()
        with open(cfg, "w") as f: f.write(good.replace('level = "info"', 'level = "loud"'))
        r = reload_round(lambda: request(daemon.control, {"command": "reload"}), False)
        check(not r["ok"] and "reload failed, previous configuration kept" in r["error"] and (cfg + ":6: key 'log.level'") in r["error"],
              "invalid config → reload error naming the file: %s" % r.get("error"))
        check(request(daemon.control, {"command": "ping"})["ok"], "daemon serves on with the old config")
        with open(cfg, "w") as f: f.write(good)

        start = len(listener.messages)
        code, took = daemon.stop()
        listener.wait_for(lambda m: m == "STOPPING=1", 2, after=start)
        check(code == 0 and took <= 2.0, "STOPPING=1, exit 0 in %.2fs" % took)
        log = daemon.log()
        check("reload failed; keeping the previous configuration" in log, "failed reload logged")

    order = []
    for _, m in listener.messages:
        for key in ("READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"):
            if key in lines(m) and (not order or order[-1] != key):
                order.append(key)
        if m.startswith("STATUS=") and "STATUS=" not in order:
            order.append("STATUS=")
    check(order[0] == "READY=1" and order[-1] == "STOPPING=1" and "RELOADING=1" in order
          and order.index("WATCHDOG=1") < order.index("RELOADING=1"), "order READY, STATUS, WATCHDOG, RELOADING, READY, STOPPING: %r" % order)
    listener.close()

    # Wedged loop: WATCHDOG=1 stops. Abstract NOTIFY_SOCKET this time.
    abstract = "@beand-test-%d" % os.getpid()
    listener = Listener(abstract)
    env = {"NOTIFY_SOCKET": abstract, "WATCHDOG_USEC": "1000000", "BEAND_DEBUG_WEDGE_STATUS_AFTER_MS": "2000"}
    with Daemon(cfg, env=env) as daemon:
        ready = listener.wait_for(lambda m: "READY=1" in lines(m), 10)
        t_ready = listener.messages[ready][0]
        time.sleep(5.5)
        dogs = [t - t_ready for t, m in listener.messages if m == "WATCHDOG=1"]
        before = [t for t in dogs if t < 1.9]
        after = [t for t in dogs if t > 3.0]
        check(len(before) >= 2, "WATCHDOG=1 before the wedge (%d)" % len(before))
        check(not after, "no WATCHDOG=1 while the status loop is wedged (saw at %r)" % after)
        check(request(daemon.control, {"command": "ping"})["ok"], "control socket still answers (only the ticker is wedged)")
        code, took = daemon.stop()
        check(code == 0 and took <= 2.0, "wedged daemon still stops: exit 0 in %.2fs" % took)
        check("withholding WATCHDOG=1" in daemon.log() and "status-ticker" in daemon.log(), "stall logged with the loop's name")
    listener.close()
print("PASS")
PYEOF
