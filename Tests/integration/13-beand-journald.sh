#!/usr/bin/env bash
# beand → real journald: structured entries with MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER=beand and
# metadata mapped to field names (control.socket → CONTROL_SOCKET), for start, reload, failed reload
# and stop; [log] target = "auto" picks journald when JOURNAL_STREAM names stderr. Starts
# /lib/systemd/systemd-journald when none runs (root only) and stops it again afterwards.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
PY="${BEAND_PY:-python3}"; [ -x "$PY" ] || PY=python3
export BEAND_BIN="${BEAND_BIN:-$ROOT/.build/debug}"
[ -x "$BEAND_BIN/beand" ] || { echo "SKIP: $BEAND_BIN/beand not built"; exit 77; }
command -v journalctl >/dev/null || { echo "SKIP: journalctl not installed"; exit 77; }
exec "$PY" - "$ROOT" <<'PYEOF'
import json, os, re, signal, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "Tests/service-harness"))
from harness import *

# The message ids as the source declares them (the catalog and man page are written from there).
source = open(os.path.join(sys.argv[1], "Sources/BeanService/Logging/BeandMessageID.swift")).read()
IDS = dict(re.findall(r'case (\w+) = "([0-9a-f]{32})"', source))
check(set(IDS) >= {"start", "stop", "reload", "reloadFailed", "cameraLost", "cameraRecovered", "reject"},
      "message id enum lists start, stop, reload, reloadFailed, cameraLost, cameraRecovered, reject")

def entries(pid, want, timeout=10):
    return journal_entries(pid, want, timeout=timeout)

def by_id(found, name):
    return [e for e in found if e.get("MESSAGE_ID") == IDS[name]]

with Journald():
    with TempDir() as d:
        cfg = write_config(d, log_target="journald")
        with Daemon(cfg) as daemon:
            daemon.wait_ready()
            check(request(daemon.control, {"command": "reload"})["ok"], "reload ok")
            good = open(cfg).read()
            with open(cfg, "w") as f:
                f.write(good.replace("drain_timeout_ms = 2000", "drain_timeout_ms = -1").replace("idle_timeout_s = 60", "idle_timeout_s = 0"))
            check(not request(daemon.control, {"command": "reload"})["ok"], "reload of a bad config fails")
            code, _ = daemon.stop()
            check(code == 0, "exit 0")
            pid = daemon.process.pid
            found = entries(pid, 4)
            check(daemon.log().strip() == "", "nothing on stderr with target journald: %r" % daemon.log()[:200])

        check(all(e.get("SYSLOG_IDENTIFIER") == "beand" for e in found) and found,
              "%d entries, all SYSLOG_IDENTIFIER=beand" % len(found))
        start = by_id(found, "start")
        check(len(start) == 1, "one start entry with MESSAGE_ID start")
        s = start[0]
        check(s["PRIORITY"] == "5" and s["MESSAGE"] == "beand started", "start: PRIORITY=5 (notice), MESSAGE")
        check(s.get("CONTROL_SOCKET") == os.path.join(d, "control.sock") and s.get("REJECTS_SOCKET") == os.path.join(d, "rejects.sock")
              and s.get("LOG_TARGET") == "journald" and s.get("CONFIG") == cfg and s.get("VERSION") == "0.1.0",
              "start: metadata control.socket → CONTROL_SOCKET etc.")
        check(s.get("BLAS_CORE", "") != "", "start: BLAS_CORE names the OpenBLAS kernels (%r)" % s.get("BLAS_CORE"))
        check(s.get("LOGGER") == "beand" and "CODE_FILE" in s and "CODE_LINE" in s, "start: LOGGER, CODE_FILE, CODE_LINE")
        reload = by_id(found, "reload")
        check(len(reload) == 1 and reload[0]["PRIORITY"] == "5" and reload[0].get("TRIGGER") == "control"
              and reload[0].get("CHANGED") == "nothing", "reload entry: MESSAGE_ID, TRIGGER=control, CHANGED")
        failed = by_id(found, "reloadFailed")
        check(len(failed) == 1 and failed[0]["PRIORITY"] == "3"
              and failed[0].get("ERROR", "") == (cfg + ":3: key 'daemon.drain_timeout_ms': -1 is out of range 0...60000\n"
                                                  + cfg + ":11: key 'control.idle_timeout_s': 0 is out of range 1...86400"),
              "reload-failed entry: PRIORITY=3, ERROR (two lines, newline kept) names PATH:LINE and key")
        stop = by_id(found, "stop")
        check(len(stop) == 1 and stop[0].get("SIGNAL") == "SIGTERM" and stop[0].get("DRAIN_TIMEOUT_MS") == "2000",
              "stop entry: SIGNAL=SIGTERM, DRAIN_TIMEOUT_MS")

        # target = "auto": journald only when JOURNAL_STREAM names the stderr beand actually has.
        with open(cfg, "w") as f: f.write(good.replace('target = "journald"', 'target = "auto"'))
        for matching in (True, False):
            err_path = os.path.join(d, "auto-%s.stderr" % matching)
            with open(err_path, "wb") as err:
                st = os.fstat(err.fileno())
                stream = "%d:%d" % (st.st_dev, st.st_ino if matching else st.st_ino + 1)
                p = subprocess.Popen([BEAND, "--config", cfg], env=dict(os.environ, JOURNAL_STREAM=stream),
                                     stdout=err, stderr=err)
                deadline = time.monotonic() + 10
                while True:
                    try:
                        if request(os.path.join(d, "control.sock"), {"command": "ping"})["ok"]: break
                    except OSError:
                        pass
                    if time.monotonic() > deadline: p.kill(); p.wait(); fail("beand (auto) did not start")
                    time.sleep(0.05)
                code = p.send_signal(signal.SIGTERM) or p.wait(timeout=5)
            text = open(err_path).read()
            if matching:
                # Wait for the stop entry (the last one beand writes), then read them all: a count
                # of entries could be met by other messages before the start entry is queried.
                journal_entries(p.pid, 1, message_id=IDS["stop"], timeout=10)
                found = entries(p.pid, 2, timeout=1)
                check(code == 0 and len(by_id(found, "start")) == 1 and len(by_id(found, "stop")) == 1
                      and "beand started" not in text,
                      "auto + JOURNAL_STREAM matching stderr → journald (exit %s; entries %r; stderr %r)"
                      % (code, [e.get("MESSAGE") for e in found], text[-500:]))
            else:
                found = entries(p.pid, 99, timeout=1)
                check(not found and "beand started" in text, "auto + JOURNAL_STREAM of another file → stderr")
print("PASS")
PYEOF
