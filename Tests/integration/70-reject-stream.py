#!/usr/bin/env python3
"""Python consumers for 70-reject-stream.sh; argv[1] is the driver's directory."""
import json, os, signal, socket, subprocess, sys, threading, time

WORK = sys.argv[1]
SOCK = os.path.join(WORK, "rejects.sock")
failures = []
TOTAL = 8000  # > the driver's backlog limit (4096) plus what a stalled socket holds
command_id = 0

def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(name)

def read_ack(want_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(os.path.join(WORK, "ack")) as f:
                parts = f.read().strip().split(" ", 1)
            if int(parts[0]) == want_id:
                return parts[1]
        except (FileNotFoundError, ValueError, IndexError):
            pass
        time.sleep(0.01)
    raise SystemExit(f"FAIL driver did not answer command {want_id} within {timeout}s")

def command(text):
    global command_id
    command_id += 1
    tmp = os.path.join(WORK, "command.tmp")
    with open(tmp, "w") as f:
        f.write(f"{command_id} {text}\n")
    os.rename(tmp, os.path.join(WORK, "command"))
    return read_ack(command_id)

class Consumer:
    def __init__(self, resume_after=None, rcvbuf=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(SOCK)
        if resume_after is not None:
            self.s.sendall(json.dumps({"resume_after": resume_after}).encode() + b"\n")
        self.f = self.s.makefile("rb")
        self.events, self.gaps, self.errors, self.objects = [], [], [], []

    def read_until(self, last_seq, timeout=30):
        self.s.settimeout(timeout)
        try:
            while not self.events or self.events[-1] < last_seq:
                line = self.f.readline()
                if not line:
                    return False
                o = json.loads(line)
                self.objects.append(o)
                if o["type"] == "reject":
                    self.events.append(o["seq"])
                elif o["type"] == "gap":
                    self.gaps.append(o)
                    if o["to_seq"] >= last_seq:
                        return True
                else:
                    self.errors.append(o)
        except socket.timeout:
            return False
        return True

    def coverage(self):
        seqs = list(self.events)
        for g in self.gaps:
            seqs += range(g["from_seq"], g["to_seq"] + 1)
        return sorted(seqs)

    def close(self):
        self.s.close()

VICTIM = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"resume_after": 0}\n')
for line in s.makefile("rb"):
    o = json.loads(line)
    if o["type"] == "reject":
        print(o["seq"], flush=True)
"""

SCHEMA = {"type": str, "seq": int, "bean_id": int, "camera": str, "frame_seq": int, "lane": (int, type(None)),
          "verdict": str, "reason": (str, type(None)), "label": (str, type(None)), "score": (float, int, type(None)),
          "captured_mono_us": int, "decided_mono_us": (int, type(None)), "eject_at_mono_us": (int, type(None)),
          "time_unix_us": int, "neighbors": list, "crop": (str, type(None))}

def main():
    ready = read_ack(0)
    first = int(ready.split()[1])
    check("driver ready, fresh state starts at 1", first == 1, ready)

    readers = [Consumer(resume_after=0) for _ in range(4)]
    stalled = Consumer(resume_after=0, rcvbuf=4096)
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, SOCK], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)

    results = {}
    threads = []
    for i, r in enumerate(readers):
        t = threading.Thread(target=lambda r=r, i=i: results.__setitem__(i, r.read_until(TOTAL, timeout=90)))
        t.start()
        threads.append(t)

    publisher = threading.Thread(target=lambda: results.__setitem__("last", int(command(f"publish {TOTAL} 2000"))))
    publisher.start()

    victim_seen = []
    for line in victim.stdout:
        victim_seen.append(int(line))
        if len(victim_seen) >= 400:
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    resumed = Consumer(resume_after=victim_seen[-1])
    resumer = threading.Thread(target=lambda: results.__setitem__("resumed", resumed.read_until(TOTAL, timeout=90)))
    resumer.start()

    publisher.join()
    last = results["last"]
    check(f"published {TOTAL} events", last == TOTAL, last)
    for t in threads:
        t.join()
    for i, r in enumerate(readers):
        check(f"reader {i} got 1..{last} in order, no gaps", results.get(i) and r.events == list(range(1, last + 1))
              and not r.gaps and not r.errors, f"{len(r.events)} events, gaps {r.gaps[:3]}, errors {r.errors[:2]}")

    resumer.join()
    ok = results.get("resumed")
    combined = victim_seen + resumed.events
    check("killed consumer resumed without missing or repeated seq", ok and combined == list(range(1, last + 1))
          and not resumed.gaps, f"victim {len(victim_seen)}, resumed {len(resumed.events)} from "
          f"{resumed.events[:1]}, gaps {resumed.gaps[:2]}")

    bad = []
    for o in readers[0].objects:
        keys_ok = set(o) == set(SCHEMA)
        types_ok = all(isinstance(o.get(k), t) for k, t in SCHEMA.items())
        n_ok = all(set(n) == {"label", "distance", "vector_id"} for n in o.get("neighbors", []))
        if not (keys_ok and types_ok and n_ok and o["type"] == "reject"):
            bad.append(o)
    check("every reject event matches the beand-rejects(7) schema", not bad, bad[:1])

    ok = stalled.read_until(last, timeout=30)
    overflow = [g for g in stalled.gaps if g["reason"] == "overflow"]
    check("stalled consumer got an overflow gap", ok and overflow, stalled.gaps[:3])
    check("stalled consumer: events plus gaps cover every seq exactly once",
          stalled.coverage() == list(range(1, last + 1)), f"{len(stalled.coverage())} covered")
    check("gap counts are consistent", all(g["count"] == g["to_seq"] - g["from_seq"] + 1 for g in stalled.gaps))
    stats = json.loads(command("stats"))
    lost = sum(g["count"] for g in overflow)
    check("server counted exactly the stalled consumer's overflow", stats["overflow_events"] == lost,
          f"{stats} vs {lost}")

    garbage = Consumer()
    garbage.s.sendall(b"\x00\xffnot json\n")
    garbage.s.settimeout(5)
    err = json.loads(garbage.f.readline())
    check("garbage gets an error line", err.get("type") == "error" and "resume_after" in err.get("error", ""), err)

    for c in readers + [stalled, resumed, garbage]:
        c.close()

    first2 = int(command("restart"))
    check("clean restart continues right after the last seq", first2 == last + 1, first2)
    after = Consumer(resume_after=last)
    behind = Consumer(resume_after=last - 10)
    time.sleep(0.2)
    last2 = int(command("publish 100 2000"))
    check("second run numbers continue", last2 == last + 100, last2)
    after.read_until(last2)
    check("resume across restart: nothing missing, no gap", after.events == list(range(last + 1, last2 + 1))
          and not after.gaps, f"{after.events[:3]} gaps {after.gaps}")
    behind.read_until(last2)
    check("numbers from the previous run are a restart gap",
          behind.gaps == [{"type": "gap", "from_seq": last - 9, "to_seq": last, "count": 10, "reason": "restart"}]
          and behind.events == list(range(last + 1, last2 + 1)), behind.gaps)
    after.close()
    behind.close()

    with open(os.path.join(WORK, "rejects.seq")) as f:
        reserved = int([l for l in f.read().splitlines() if l.startswith("reserved")][0].split("=")[1])
    check("sequence reservation on disk covers every issued number", reserved >= last2, reserved)

    command("stop")
    check("socket removed at stop", not os.path.exists(SOCK))
    with open(os.path.join(WORK, "rejects.seq")) as f:
        final = int([l for l in f.read().splitlines() if l.startswith("reserved")][0].split("=")[1])
    check("clean stop records the exact last seq", final == last2, final)

    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all reject-stream checks passed'}")
    sys.exit(1 if failures else 0)

main()
