#!/usr/bin/env python3
"""Checks the serial log of the vivid harness (Tests/v4l2/init.sh + v4l2-probe).

Prints one line per check and exits 1 if any failed. Standard library only.
"""
import re
import sys

EXPECTED_BARS = ["white", "yellow", "cyan", "green", "magenta", "red", "blue", "black"]
COLOURS = {(1, 1, 1): "white", (1, 1, 0): "yellow", (0, 1, 1): "cyan", (0, 1, 0): "green",
           (1, 0, 1): "magenta", (1, 0, 0): "red", (0, 0, 1): "blue", (0, 0, 0): "black"}


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def classify(rgb):
    """A channel is 'on' between 150 and 230 (vivid's 75 % bars are ~191) and 'off' below 40."""
    bits = []
    for c in rgb:
        if 150 <= c <= 230:
            bits.append(1)
        elif c <= 40:
            bits.append(0)
        else:
            return f"unclear{tuple(rgb)}"
    return COLOURS[tuple(bits)]


def main(path):
    text = open(path, errors="replace").read()
    probe = [fields(l[l.index("PROBE "):]) for l in text.splitlines() if "PROBE " in l]
    harness = [fields(l[l.index("HARNESS "):]) for l in text.splitlines() if "HARNESS " in l]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    check(any("done" in l for l in text.splitlines() if "HARNESS" in l), "harness ran to the end")
    check("insmod-failed" not in text and "platform_device=vivid" in text, "vivid module chain loaded, /dev/video0 present")
    for fmt, fourcc in (("rgb24", "RGB3"), ("yuyv", "YUYV")):
        runs = [p for p in probe if p.get("run") == fmt and "frames" in p]
        check(len(runs) == 1, f"{fmt}: capture run reported")
        if not runs:
            continue
        r = runs[0]
        check(r.get("fourcc") == fourcc, f"{fmt}: driver format {r.get('fourcc')} == {fourcc}")
        check(int(r.get("frames", 0)) >= 30, f"{fmt}: {r.get('frames')} frames >= 30")
        check(r.get("sizes") == "640x480", f"{fmt}: every frame 640x480 (got {r.get('sizes')})")
        check(r.get("seq_increasing") == "true", f"{fmt}: sequence numbers strictly increasing")
        bars = [p for p in probe if p.get("bars") == fmt]
        check(len(bars) == 1, f"{fmt}: colour bars sampled")
        if bars:
            means = [tuple(int(v) for v in b.split(",")) for b in bars[0]["rgb"].split(";")]
            seen = [classify(m) for m in means]
            check(seen == EXPECTED_BARS, f"{fmt}: 75% colour bars {seen}")
        rc = [h for h in harness if h.get("probe") == f"capture-{fmt}"]
        check(bool(rc) and rc[0].get("rc") == "0", f"{fmt}: probe exit status 0")

    events = [p for p in probe if p.get("camera") == "vivid-loss" and "event" in p]
    states = [e["event"] for e in events]
    check("HARNESS unbound" in text and "HARNESS bound" in text, "device unbound while streaming, then bound again")
    check(states[:1] == ["streaming"], f"loss: streamed first (events {states})")
    check("lost" in states, "loss: state lost reported")
    check(states.count("lost") == 1 and states.count("reopening") <= 1,
          f"loss: each state change logged once (events {states})")
    if "lost" in states:
        check("streaming" in states[states.index("lost"):], "loss: streaming again after the device came back")
    results = [p for p in probe if p.get("loss") == "result"]
    check(len(results) == 1, "loss: result reported")
    if results:
        r = results[0]
        check(int(r["frames_before"]) >= 10, f"loss: {r['frames_before']} frames before the loss")
        check(int(r["frames_after"]) >= 30, f"loss: {r['frames_after']} frames after recovery")
        check(r["final_state"] == "streaming" and int(r["losses"]) == 1,
              f"loss: final state {r['final_state']}, losses {r['losses']}")
        check(r["seq_increasing"] == "true", "loss: sequence numbers increase across the reopen")
    exits = [p for p in probe if p.get("exit_on_loss") == "result"]
    check(len(exits) == 1, "exit_on_loss: result reported")
    if exits:
        e = exits[0]
        check(int(e["frames"]) >= 10 and e["ended_with"] == "error" and e["error_kind"] == "unavailable"
              and e["final_state"] == "stopped",
              f"exit_on_loss: stream ended with an unavailable error, camera stopped ({e})")
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
