#!/usr/bin/env python3
"""The click-log story end to end with write-behind to SQLite.

Starts Granary (the release binary, or GRANARY_BIN) on a free port with the
click-log rules and an SQLite file in a temporary directory, then:

- writes USERS x RECS recommendations (RPUSH recommend:{user}, SADD
  {user}:recommendedItemId) and READS reads (HSET {user}:{item} readAt
  isRecommended, SADD {user}:readItemId) through redis-py pipelines,
- while a second writer keeps adding reads and the server flushes every
  200 ms,
- then WRITEBEHIND FLUSH, and checks that the SQLite tables hold exactly the
  rows computed here independently, and that the "is read" flag found with
  SINTER in Granary equals the SQL join.

Exits non-zero on any difference. Usage:

    python3 examples/clicklog/clicklog.py [--users 2000] [--recs 50] [--reads 200000]
"""

import argparse
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
ITEMS = 5000
PIPELINE = 1000
RULES = [
    "recs list recommend:{user_id} table=recommendations value=item_id",
    "readset set {user_id}:readItemId table=read_items member=item_id",
    "recset set {user_id}:recommendedItemId table=recommended_items member=item_id",
    "reads hash {user_id}:{item_id} table=reads "
    "fields=readAt:read_at:integer,isRecommended:is_recommended:boolean",
]


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def start_granary(db_path):
    binary = os.environ.get("GRANARY_BIN", str(REPO / "target" / "release" / "granary"))
    port = free_port()
    args = [binary, "--port", str(port), "--save", "", "--appendonly", "no",
            "--writebehind-sink", f"sqlite:{db_path}", "--writebehind-interval", "200"]
    for r in RULES:
        args += ["--writebehind-rule"] + r.split(" ")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("granary did not start")


class Model:
    """What the tables must hold, computed from what was written."""

    def __init__(self):
        self.pushed = []  # (user, item) per RPUSH element, in order
        self.recommended = {}  # user -> set of items
        self.reads = {}  # (user, item) -> (readAt, isRecommended)
        self.lock = threading.Lock()


def write_recommendations(r, model, users, recs, rng):
    pipe = r.pipeline(transaction=False)
    for u in range(users):
        items = rng.sample(range(ITEMS), recs)
        user = f"u{u}"
        pipe.rpush(f"recommend:{user}", *items)
        pipe.sadd(f"{user}:recommendedItemId", *items)
        model.pushed += [(user, str(i)) for i in items]
        model.recommended[user] = {str(i) for i in items}
        if len(pipe) >= PIPELINE:
            pipe.execute()
    pipe.execute()


def write_reads(r, model, users, count, rng, base_ts, other_items=False):
    """Reads; with `other_items` only of items never recommended (ids from
    ITEMS up), so two writers never write the same hash."""
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        user = f"u{rng.randrange(users)}"
        if other_items:
            item = str(ITEMS + rng.randrange(ITEMS))
        elif rng.random() < 0.7:
            item = rng.choice(sorted(model.recommended[user]))
        else:
            item = str(rng.randrange(ITEMS))
        rec = item in model.recommended[user]
        ts = base_ts + n
        pipe.hset(f"{user}:{item}", mapping={"readAt": ts, "isRecommended": int(rec)})
        pipe.sadd(f"{user}:readItemId", item)
        with model.lock:
            model.reads[(user, item)] = (ts, rec)
        if len(pipe) >= PIPELINE:
            pipe.execute()
    pipe.execute()


def check(db_path, model, r):
    db = sqlite3.connect(db_path)
    errors = []

    def expect(name, got, want):
        if got != want:
            errors.append(f"{name}: {len(got)} rows, expected {len(want)}")

    got = db.execute("SELECT user_id, item_id FROM recommendations ORDER BY id").fetchall()
    expect("recommendations", got, model.pushed)
    got = set(db.execute("SELECT user_id, item_id FROM read_items").fetchall())
    expect("read_items", got, set(model.reads))
    got = {(u, i): (ts, bool(rec)) for u, i, ts, rec in
           db.execute("SELECT user_id, item_id, read_at, is_recommended FROM reads")}
    expect("reads", got, model.reads)
    # "Recommended and read", from Granary with SINTER and from SQL.
    users = sorted(model.recommended)[:200]
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.sinter(f"{u}:recommendedItemId", f"{u}:readItemId")
    in_granary = {u: {m.decode() for m in s} for u, s in zip(users, pipe.execute())}
    in_sql = {u: set() for u in users}
    for u, i in db.execute(
            "SELECT r.user_id, r.item_id FROM recommended_items r "
            "JOIN read_items x ON x.user_id = r.user_id AND x.item_id = r.item_id"):
        if u in in_sql:
            in_sql[u].add(i)
    expect("is-read flags (SINTER vs SQL join)", in_sql, in_granary)
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--recs", type=int, default=50)
    ap.add_argument("--reads", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="clicklog-")
    db_path = os.path.join(tmp, "clicklog.db")
    proc, port = start_granary(db_path)
    try:
        r = redis.Redis(port=port)
        model = Model()
        started = time.time()
        write_recommendations(r, model, a.users, a.recs, random.Random(a.seed))
        # The second writer keeps adding reads while the main one writes and
        # the server flushes every 200 ms.
        other = threading.Thread(target=write_reads, args=(
            redis.Redis(port=port), model, a.users, a.reads // 10,
            random.Random(a.seed + 1), 2_000_000_000, True))
        other.start()
        write_reads(r, model, a.users, a.reads, random.Random(a.seed + 2), 1_700_000_000)
        other.join()
        wrote = time.time() - started
        r.execute_command("WRITEBEHIND", "FLUSH")
        flushed = time.time() - started
        status = r.execute_command("WRITEBEHIND", "STATUS")
        status = {k.decode(): v.decode() for k, v in zip(status[::2], status[1::2])} \
            if isinstance(status, list) else {k.decode(): v.decode() for k, v in status.items()}
        errors = check(db_path, model, r)
        print(f"wrote in {wrote:.1f}s, all flushed after {flushed:.1f}s; "
              f"rows_flushed={status['rows_flushed']} batches={status['batches_flushed']} "
              f"failed={status['batches_failed']}")
        for e in errors:
            print("MISMATCH", e)
        if errors:
            return 1
        print("OK: SQLite tables equal the rows computed independently")
        return 0
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
