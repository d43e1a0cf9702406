#!/usr/bin/env python3
"""Where the time of a one-node `up` goes, from the events' own timestamps.

Usage: up-profile.py EVENTS_JSONL WALL_S [EVENTS_JSONL WALL_S ...]

Each pair is one run: its lab's .tartlab/events.jsonl (only the last `up` in it is read) and
the command's wall time as GNU time measured it. Prints one line per phase,
`phase<TAB>median<TAB>min<TAB>max` in seconds, in the order the phases happen; a phase a
run did not have (say, no served-key check) is left out of that run.
"""
import json
import sys

# (label, test on an event): a phase ends at the first event that matches its test, after
# the previous phase's end.
PHASES = [
    ("clone and set (to `tart run`)", lambda e: e["stage"] == "boot" and e["status"] == "started"),
    ("boot: `tart run` to the lease", lambda e: e["stage"] == "ip" and e["status"] == "done"),
    ("sshd up and the login (password, PAM)", lambda e: e["stage"] == "ssh" and e["status"] == "done"),
    ("lab key, sudo, two ssh-keygen", lambda e: e["stage"] == "base" and e["message"].startswith("new host keys made")),
    ("pin, hostname, machine-id, sshd reload", lambda e: e["stage"] == "base" and e["message"] == "identity: done"),
    ("the served-key handshake", lambda e: e["stage"] in ("hosts", "network", "ready") and e["status"] in ("started", "done")),
    ("/etc/hosts and the check (commands)", lambda e: e["stage"] == "ready" and e["status"] == "done"),
    ("recap and exit", None),
]


def last_up(path):
    events = [json.loads(l) for l in open(path) if l.strip()]
    start = max(i for i, e in enumerate(events) if e["stage"] == "run" and e["status"] == "started")
    return events[start:]


def phases(events, wall):
    out, at, i = {}, 0.0, 0
    for label, test in PHASES:
        if test is None:
            out[label] = wall - at
            break
        j = next((k for k in range(i, len(events)) if test(events[k])), None)
        if j is None:
            continue
        t = events[j]["elapsed_ms"] / 1000
        out[label] = t - at
        at, i = t, j + 1
    return out


def main(args):
    runs = [phases(last_up(args[k]), float(args[k + 1])) for k in range(0, len(args), 2)]
    for label, _ in PHASES:
        values = sorted(r[label] for r in runs if label in r)
        if values:
            median = values[(len(values) - 1) // 2]
            print(f"{label}\t{median:.3f}\t{values[0]:.3f}\t{values[-1]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
