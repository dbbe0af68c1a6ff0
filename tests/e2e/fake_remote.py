#!/usr/bin/python3
"""fake_remote.py: a stand-in for qmail-remote in the queue's end-to-end
tests. test_queue.py copies it to <instance>/bin/qmail-remote.

It speaks qmail-remote's interface (argv host sender recipient, message
on fd 0, recipient and message reports on fd 1, exit 0) and records each
call under <instance>/fake-remote/: started/N.json when it begins,
done/N.json and done/N.msg when it ends. What it reports comes from
fake-remote/config.json, reread on every call, so a test can change it
between attempts:

    {"default": RULE, "rcpts": {"addr": RULE, ...}}
    RULE = {"reports": ["r", "Kok"],   # records written, each + NUL
            "gate": "name",            # wait until fake-remote/gates/name
                                       # exists (at most 60 s)
            "sleep": 0.5}              # seconds, after the gate

state.json, updated under an flock, counts the copies running now and the
most that ever ran at once. It must never touch anything outside
fake-remote/ and never talk to the network.
"""

import fcntl
import json
import os
import sys
import time

GATE_TIMEOUT = 60


def base_dir():
    bindir = os.path.dirname(os.path.abspath(sys.argv[0]))
    return os.path.join(os.path.dirname(bindir), "fake-remote")


def write_json(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def update_state(base, change):
    """Applies change(state) under the lock; returns the new state."""
    with open(os.path.join(base, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(base, "state.json")
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {"calls": 0, "running": 0, "max_running": 0}
        change(state)
        write_json(path, state)
        return dict(state)


def begin(state):
    state["calls"] += 1
    state["running"] += 1
    state["max_running"] = max(state["max_running"], state["running"])


def end(state):
    state["running"] -= 1


def rule_for(base, rcpt):
    try:
        with open(os.path.join(base, "config.json")) as f:
            config = json.load(f)
    except FileNotFoundError:
        config = {}
    rules = config.get("rcpts", {})
    return rules.get(rcpt) or config.get("default") or {}


def wait_for_gate(base, name):
    path = os.path.join(base, "gates", name)
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def main():
    base = base_dir()
    args = sys.argv[1:]
    message = sys.stdin.buffer.read()
    number = update_state(base, begin)["calls"]
    name = f"{number:04d}"
    record = {"argv": args, "pid": os.getpid(), "n": number}
    write_json(os.path.join(base, "started", name + ".json"), record)
    rule = rule_for(base, args[2] if len(args) > 2 else "")
    reports = rule.get("reports", ["r", "Kok"])
    if rule.get("gate") and not wait_for_gate(base, rule["gate"]):
        reports = ["Zfake_remote: gate never opened"]
    time.sleep(rule.get("sleep", 0))
    with open(os.path.join(base, "done", name + ".msg"), "wb") as f:
        f.write(message)
    record["reports"] = reports
    write_json(os.path.join(base, "done", name + ".json"), record)
    update_state(base, end)
    out = b"".join(r.encode() + b"\0" for r in reports)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
