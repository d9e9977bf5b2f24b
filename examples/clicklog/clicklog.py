#!/usr/bin/env python3
"""The click-log story end to end with write-behind to SQLite and PostgreSQL.

For each sink, starts Granary (the release binary, or GRANARY_BIN) on a free
port with the click-log rules, then:

- writes USERS x RECS recommendations (RPUSH recommend:{user}, SADD
  {user}:recommendedItemId) and READS reads (HSET {user}:{item} readAt
  isRecommended, SADD {user}:readItemId) through redis-py pipelines,
- while a second writer keeps adding reads and the server flushes every
  200 ms,
- then WRITEBEHIND FLUSH, and checks that the tables hold exactly the rows
  computed here independently, and that the "is read" flag found with
  SINTER in Granary equals the SQL join.

Options add the failure stories of the write-behind proof:

- `--sink postgres` (or `both`, the default when PostgreSQL is installed):
  the script initdb's and starts its own PostgreSQL in a temporary directory
  on a free port, and stops it by PID at the end.
- `--kill9 N`: Granary runs with the AOF (everysec) and is killed with
  SIGKILL N times during the load, then restarted on the same directory and
  port; the writers reconnect and carry on. Only acknowledged writes are
  certain: a pipeline cut by the kill may or may not have run.
- `--pg-outage S`: one more PostgreSQL run in which PostgreSQL is really
  stopped (pg_ctl stop -m fast) for S seconds under load; INFO writebehind
  is sampled to show the backlog rise and drain.

Exits non-zero on any difference. Usage:

    python3 examples/clicklog/clicklog.py [--users 2000] [--recs 50] [--reads 200000]
        [--sink sqlite|postgres|both] [--kill9 N] [--pg-outage SECONDS]
"""

import argparse
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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
# A story's outcome, and the script's exit status: 3 when the only
# differences are writes of pipelines cut by kill -9 (never acknowledged)
# that Granary kept but the tables did not get.
OK, FAILED = "ok", "failed"
# Failures a pipeline meets when the server is killed under it.
CUT = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def wait_for(what, cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def client(port):
    """A client that never replays a command by itself: a pipeline resent
    after the server died would push its elements twice."""
    return redis.Redis(port=port, retry=Retry(NoBackoff(), 0), socket_timeout=120)


# --- PostgreSQL, our own -------------------------------------------------------


def pg_bin():
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or None."""
    root = Path("/usr/lib/postgresql")
    dirs = [d / "bin" for d in root.iterdir() if (d / "bin" / "initdb").exists()] \
        if root.is_dir() else []
    dirs.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return dirs[-1] if dirs else None


class Postgres:
    """A PostgreSQL server of our own: initdb in a temporary directory,
    trust authentication, socket in that directory, 127.0.0.1 on a free
    port. Run as the `postgres` user when we are root (it refuses root)."""

    def __init__(self, tmp):
        self.bin = pg_bin()
        self.dir = Path(tmp) / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc = None
        self.dir.mkdir()
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres:", str(self.dir)], check=True)
        self.run_as(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                     "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        self.start()

    def command(self, argv):
        path = [str(self.bin / argv[0])] + argv[1:]
        return ["runuser", "-u", "postgres", "--"] + path if os.getuid() == 0 else path

    def run_as(self, argv, **kw):
        return subprocess.run(self.command(argv), **kw)

    def start(self):
        self.proc = subprocess.Popen(
            self.command(["postgres", "-D", str(self.data), "-p", str(self.port),
                          "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1",
                          "-c", "fsync=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("PostgreSQL to accept connections", lambda: self.try_sql("SELECT 1") == "1")

    def pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_fast(self):
        """A real stop (pg_ctl stop -m fast): connections are refused until
        start()."""
        self.run_as(["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w"],
                    check=True, capture_output=True)
        self.proc.wait(timeout=60)

    def shutdown(self):
        """Fast shutdown by PID (SIGINT), waiting for the process to go."""
        pid = self.pid()
        if pid and self.proc and self.proc.poll() is None:
            os.kill(pid, signal.SIGINT)
            self.proc.wait(timeout=60)

    def psql(self, sql, db="postgres"):
        return subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", db, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True)

    def try_sql(self, sql):
        out = self.psql(sql)
        return out.stdout.strip() if out.returncode == 0 else None

    def create_db(self, name):
        out = self.psql(f"CREATE DATABASE {name}")
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={name}"


# --- The tables, through one interface -------------------------------------------


class SqliteTables:
    def __init__(self, path):
        self.path = path
        self.name = "SQLite"

    def rows(self, sql):
        db = sqlite3.connect(self.path)
        try:
            return [tuple(str(v) for v in row) for row in db.execute(sql)]
        finally:
            db.close()


class PostgresTables:
    def __init__(self, pg, db):
        self.pg, self.db = pg, db
        self.name = "PostgreSQL"

    def rows(self, sql):
        out = self.pg.psql(f"COPY ({sql}) TO STDOUT", self.db)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr}")
        return [tuple(line.split("\t")) for line in out.stdout.splitlines() if line]


def truthy(v):
    return v in ("1", "t", "true")


# --- Granary ------------------------------------------------------------------------


class Granary:
    """Granary on a fixed port and data directory, its stderr in a log file;
    with `aof`, restartable after kill -9 with its data."""

    def __init__(self, sink, workdir, aof):
        self.binary = os.environ.get("GRANARY_BIN", str(REPO / "target" / "release" / "granary"))
        self.port = free_port()
        self.dir = workdir
        self.log = open(os.path.join(workdir, "granary.log"), "ab")
        self.args = [self.binary, "--port", str(self.port), "--dir", workdir, "--save", "",
                     "--writebehind-sink", sink,
                     # Under kill -9, flush often: kills must land in flushes.
                     "--writebehind-interval", "20" if aof else "200"]
        self.args += ["--appendonly", "yes", "--appendfsync", "everysec"] if aof \
            else ["--appendonly", "no"]
        for r in RULES:
            self.args += ["--writebehind-rule"] + r.split(" ")
        self.proc = None
        self.kills = 0
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"granary exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                return client(self.port).ping()
            except redis.RedisError:
                return False
        wait_for("granary to answer PING", up)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()

    def log_tail(self, n=40):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")


def info_writebehind(r):
    """INFO writebehind as a dict of strings (parsed here: last_error is
    free text)."""
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command("INFO", "writebehind")
        text = conn.read_response().decode()
    finally:
        r.connection_pool.release(conn)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


# --- What was written, and what it can have done ----------------------------------


class Model:
    """What the tables must hold, computed from what was written. Writes of a
    pipeline the server acknowledged are certain; those of a pipeline cut by
    a kill -9 are `maybe`: they may or may not have run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.intended = {}  # user -> recommended items, as chosen (for the writers)
        self.pushed = []  # (user, item) per acknowledged RPUSH element, in order
        self.pushed_maybe = set()
        self.sets = {"recommended_items": set(), "read_items": set()}  # {(user, item)}
        self.sets_maybe = {"recommended_items": set(), "read_items": set()}
        self.reads = {}  # (user, item) -> (readAt, isRecommended), last acknowledged
        self.reads_maybe = {}  # (user, item) -> {values} sent after the last ack
        self.failed_pipelines = 0

    def settle(self, batch, acked):
        """Records a pipeline's writes: `batch` holds (kind, key, value)."""
        with self.lock:
            if not acked:
                self.failed_pipelines += 1
            for kind, key, value in batch:
                if kind == "push":
                    self.pushed.append(key) if acked else self.pushed_maybe.add(key)
                elif kind == "hash" and acked:
                    self.reads[key] = value
                    self.reads_maybe.pop(key, None)
                elif kind == "hash":
                    self.reads_maybe.setdefault(key, set()).add(value)
                else:
                    (self.sets if acked else self.sets_maybe)[kind].add(key)


class Load:
    """Shared by the writers and the killer: progress, and the Granary to
    reconnect to."""

    def __init__(self, granary, total):
        self.granary = granary
        self.total = total
        self.done = 0
        self.extend = threading.Event()  # set: the second writer keeps going


def send(pipe, batch, model, load):
    """Executes a pipeline; when the server dies under it, records its writes
    as uncertain and waits for the server to be back."""
    n = len(pipe)
    try:
        pipe.execute()
        model.settle(batch, True)
    except CUT:
        model.settle(batch, False)
        pipe.reset()
        wait_for("granary to come back", lambda: answers(load.granary.port), 120)
    batch.clear()
    with model.lock:
        load.done += n


def answers(port):
    try:
        return client(port).ping()
    except redis.RedisError:
        return False


def write_recommendations(model, load, users, recs, rng):
    pipe = client(load.granary.port).pipeline(transaction=False)
    batch = []
    for u in range(users):
        items = [str(i) for i in rng.sample(range(ITEMS), recs)]
        user = f"u{u}"
        model.intended[user] = set(items)
        pipe.rpush(f"recommend:{user}", *items)
        pipe.sadd(f"{user}:recommendedItemId", *items)
        batch += [("push", (user, i), None) for i in items]
        batch += [("recommended_items", (user, i), None) for i in items]
        if len(pipe) >= PIPELINE:
            send(pipe, batch, model, load)
    send(pipe, batch, model, load)


def write_reads(model, load, users, count, rng, base_ts, other_items=False):
    """Reads; with `other_items` only of items never recommended (ids from
    ITEMS up), so two writers never write the same hash. The second writer
    (other_items) goes on past `count` while load.extend is set."""
    pipe = client(load.granary.port).pipeline(transaction=False)
    batch = []
    n = 0
    while n < count or (other_items and load.extend.is_set()):
        user = f"u{rng.randrange(users)}"
        if other_items:
            item = str(ITEMS + rng.randrange(ITEMS))
        elif rng.random() < 0.7:
            item = rng.choice(sorted(model.intended[user]))
        else:
            item = str(rng.randrange(ITEMS))
        rec = item in model.intended[user]
        ts = base_ts + n
        pipe.hset(f"{user}:{item}", mapping={"readAt": ts, "isRecommended": int(rec)})
        pipe.sadd(f"{user}:readItemId", item)
        batch += [("hash", (user, item), (ts, rec)), ("read_items", (user, item), None)]
        if len(pipe) >= PIPELINE:
            send(pipe, batch, model, load)
            if n >= count:
                time.sleep(0.1)  # past its count: a steady trickle, not a flood
        n += 1
    send(pipe, batch, model, load)


def killer(load, kills, rng, errors):
    """kill -9 at `kills` random moments of the load (by progress), each
    followed by a restart on the same directory and port."""
    # One moment in each of `kills` equal slices of 10%..90% of the load.
    at = [0.1 + 0.8 * (k + rng.uniform(0.1, 0.9)) / kills for k in range(kills)]
    try:
        for frac in at:
            wait_for("the load to progress", lambda: load.done >= frac * load.total, 600)
            load.granary.kill9()
            load.granary.start()
            print(f"  kill -9 #{load.granary.kills} at {load.done}/{load.total} commands; "
                  "restarted", flush=True)
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"killer: {e}")


def outage(pg, load, seconds, samples):
    """Stops PostgreSQL for `seconds` while the writers run, sampling INFO
    writebehind; the second writer keeps going until PostgreSQL is back."""
    r = client(load.granary.port)
    time.sleep(1.0)  # some flushes reach PostgreSQL first

    def sample(phase):
        i = info_writebehind(r)
        samples.append((time.time(), phase, i.get("pending_rows"), i.get("oldest_pending_age_ms"),
                        i.get("batches_failed"), i.get("last_error", "")))
    try:
        sample("before")
        pg.stop_fast()
        stopped = time.time()
        while time.time() - stopped < seconds:
            time.sleep(min(1.0, max(0.1, seconds / 10)))
            sample("pg down")
        pg.start()
        sample("pg up")
    finally:
        load.extend.clear()


# --- The checks -----------------------------------------------------------------------


def granary_state(r, model):
    """Sets and hashes as Granary holds them: the mirror the tables must equal."""
    users = sorted(model.intended)
    sets = {}
    for name, suffix in (("recommended_items", "recommendedItemId"), ("read_items", "readItemId")):
        pipe = r.pipeline(transaction=False)
        for u in users:
            pipe.smembers(f"{u}:{suffix}")
        sets[name] = {(u, m.decode()) for u, ms in zip(users, pipe.execute()) for m in ms}
    keys = sorted(set(model.reads) | set(model.reads_maybe))
    hashes = {}
    for start in range(0, len(keys), PIPELINE):
        chunk = keys[start:start + PIPELINE]
        pipe = r.pipeline(transaction=False)
        for u, i in chunk:
            pipe.hgetall(f"{u}:{i}")
        for key, h in zip(chunk, pipe.execute()):
            if h:
                hashes[key] = (int(h[b"readAt"]), truthy(h[b"isRecommended"].decode()))
    lists = {}
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.lrange(f"recommend:{u}", 0, -1)
    for u, items in zip(users, pipe.execute()):
        lists[u] = [i.decode() for i in items]
    return sets, hashes, lists


def check_recommendations(tables, model, lists, errors, notes):
    rows = [(u, i) for _, u, i in
            tables.rows("SELECT id, user_id, item_id FROM recommendations ORDER BY id")]
    seen = set()
    dups = [row for row in rows if row in seen or seen.add(row)]
    if dups:
        errors.append(f"recommendations: {len(dups)} duplicate rows, e.g. {dups[:3]}")
    acked = set(model.pushed)
    missing = acked - seen
    if missing:
        errors.append(f"recommendations: {len(missing)} acknowledged elements missing, "
                      f"e.g. {sorted(missing)[:3]}")
    unknown = seen - acked - model.pushed_maybe
    if unknown:
        errors.append(f"recommendations: {len(unknown)} rows never pushed, e.g. {sorted(unknown)[:3]}")
    if [row for row in rows if row in acked] != model.pushed:
        errors.append("recommendations: acknowledged elements not in push order (ids)")
    in_lists = {(u, i) for u, items in lists.items() for i in items}
    if acked - in_lists:
        errors.append(f"Granary lists: {len(acked - in_lists)} acknowledged elements missing")
    maybe_rows = len(seen & model.pushed_maybe)
    if model.pushed_maybe:
        notes.append(f"recommendations: {maybe_rows} of {len(model.pushed_maybe)} elements of "
                     f"cut pipelines arrived (each at most once); in Granary's lists: "
                     f"{len(in_lists & model.pushed_maybe)}")
    return len(rows)


def check_set(tables, name, granary_set, model, errors, cut):
    got = set(tables.rows(f"SELECT user_id, item_id FROM {name}"))
    acked, maybe = model.sets[name], model.sets_maybe[name]
    if acked - granary_set:
        errors.append(f"{name}: Granary lost {len(acked - granary_set)} acknowledged members")
    if granary_set - acked - maybe:
        errors.append(f"{name}: Granary has {len(granary_set - acked - maybe)} members never added")
    if got != granary_set:
        diff = got ^ granary_set
        (cut if diff <= maybe - acked else errors).append(
            f"{name}: table has {len(got)} rows, Granary {len(granary_set)} members: "
            f"{len(got - granary_set)} extra, {len(granary_set - got)} missing "
            f"({len(diff & maybe - acked)} of these added by a cut pipeline), "
            f"e.g. {sorted(diff)[:3]}")
    return len(got)


def check_reads(tables, hashes, model, errors, cut):
    rows = tables.rows("SELECT user_id, item_id, read_at, is_recommended FROM reads")
    got = {(u, i): (int(ts), truthy(rec)) for u, i, ts, rec in rows}
    if len(got) != len(rows):
        errors.append(f"reads: {len(rows) - len(got)} duplicate keys")
    wrong = []
    for key in set(model.reads) | set(model.reads_maybe):
        allowed = model.reads_maybe.get(key, set())
        if key in model.reads:
            allowed = allowed | {model.reads[key]}
            ok = hashes.get(key) in allowed
        else:
            ok = key not in hashes or hashes[key] in allowed
        if not ok:
            wrong.append(key)
    if wrong:
        errors.append(f"reads: {len(wrong)} hashes in Granary lack their acknowledged "
                      f"write, e.g. {wrong[:3]} = {[hashes.get(k) for k in wrong[:3]]}")
    if got != hashes:
        diff = sorted(k for k in set(got) | set(hashes) if got.get(k) != hashes.get(k))
        of_cut = [k for k in diff if k in model.reads_maybe]
        (cut if len(of_cut) == len(diff) else errors).append(
            f"reads: table has {len(got)} rows, Granary {len(hashes)} hashes; {len(diff)} "
            f"differ ({len(of_cut)} of them written by a cut pipeline), "
            f"e.g. (key, table, Granary): {[(k, got.get(k), hashes.get(k)) for k in diff[:3]]}")
    return len(got)


def check_is_read(tables, r, model, errors, cut):
    """"Recommended and read", from Granary with SINTER and from SQL."""
    users = sorted(model.intended)[:200]
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.sinter(f"{u}:recommendedItemId", f"{u}:readItemId")
    in_granary = {u: {m.decode() for m in s} for u, s in zip(users, pipe.execute())}
    in_sql = {u: set() for u in users}
    for u, i in tables.rows(
            "SELECT r.user_id, r.item_id FROM recommended_items r "
            "JOIN read_items x ON x.user_id = r.user_id AND x.item_id = r.item_id"):
        if u in in_sql:
            in_sql[u].add(i)
    if in_sql != in_granary:
        diff = {(u, i) for u in users for i in in_sql[u] ^ in_granary[u]}
        of_cut = model.sets_maybe["read_items"] | model.sets_maybe["recommended_items"]
        (cut if diff <= of_cut else errors).append(
            f"is-read flags differ between SINTER and the SQL join for {len(diff)} "
            f"(user, item), e.g. {sorted(diff)[:3]}")


def check(tables, model, r):
    """Compares the tables with Granary and the model. Returns (errors,
    cut, notes, counts): `cut` lists tables that differ from Granary's state
    only by writes of cut pipelines (unacknowledged, yet kept by Granary)."""
    errors, cut, notes = [], [], []
    sets, hashes, lists = granary_state(r, model)
    counts = {"recommendations": check_recommendations(tables, model, lists, errors, notes)}
    for name in ("recommended_items", "read_items"):
        counts[name] = check_set(tables, name, sets[name], model, errors, cut)
    counts["reads"] = check_reads(tables, hashes, model, errors, cut)
    check_is_read(tables, r, model, errors, cut)
    return errors, cut, notes, counts


# --- One story --------------------------------------------------------------------------


def story(a, tables, sink_url, workdir, kills=0, pg=None, outage_s=0):
    """Runs the load against one Granary and checks the tables: OK or
    FAILED."""
    title = f"{tables.name}" + (f", kill -9 x{kills}" if kills else "") + \
        (f", PostgreSQL stopped {outage_s}s" if outage_s else "")
    print(f"== {title}", flush=True)
    granary = Granary(sink_url, workdir, aof=kills > 0)
    try:
        model = Model()
        total = 2 * a.users + 2 * a.reads + 2 * (a.reads // 10)
        load = Load(granary, total)
        errors = []
        threads = []
        if kills:
            threads.append(threading.Thread(target=killer, args=(
                load, kills, random.Random(a.seed + 3), errors)))
            threads[-1].start()
        started = time.time()
        write_recommendations(model, load, a.users, a.recs, random.Random(a.seed))
        samples = []
        if outage_s:
            load.extend.set()
            threads.append(threading.Thread(target=outage, args=(pg, load, outage_s, samples)))
            threads[-1].start()
        # The second writer keeps adding reads while the main one writes and
        # the server flushes every 200 ms (20 under kill -9).
        other = threading.Thread(target=write_reads, args=(
            model, load, a.users, a.reads // 10, random.Random(a.seed + 1), 2_000_000_000, True))
        other.start()
        write_reads(model, load, a.users, a.reads, random.Random(a.seed + 2), 1_700_000_000)
        other.join()
        for t in threads:
            t.join()
        wrote = time.time() - started
        r = client(granary.port)
        if outage_s:
            drain(r, samples)
            print_samples(samples)
        r.execute_command("WRITEBEHIND", "FLUSH")
        flushed = time.time() - started
        status = info_writebehind(r)
        errs, cut, notes, counts = check(tables, model, r)
        errors += errs
        print(f"  wrote in {wrote:.1f}s, all flushed after {flushed:.1f}s; "
              f"rows_flushed={status['rows_flushed']} batches={status['batches_flushed']} "
              f"failed={status['batches_failed']}; kills={granary.kills} "
              f"cut pipelines={model.failed_pipelines}")
        print("  rows: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        for n in notes:
            print("  " + n)
        for e in errors:
            print("  MISMATCH", e)
        for e in cut:
            print("  MISMATCH (unacknowledged writes only)", e)
        if errors or cut:
            print("  granary log tail:\n" + granary.log_tail())
            return FAILED
        print(f"  OK: {tables.name} tables equal the rows computed independently")
        return OK
    finally:
        granary.stop()


def drain(r, samples):
    """After the outage: sample until every pending row is written."""
    def drained():
        i = info_writebehind(r)
        samples.append((time.time(), "draining", i.get("pending_rows"),
                        i.get("oldest_pending_age_ms"), i.get("batches_failed"),
                        i.get("last_error", "")))
        return i.get("pending_rows") == "0"
    deadline = time.time() + 300
    while not drained():
        if time.time() > deadline:
            raise RuntimeError("the write-behind backlog did not drain in 300 s")
        time.sleep(0.5)


def print_samples(samples):
    t0 = samples[0][0]
    print("  INFO writebehind during the outage:")
    print(f"  {'t(s)':>6} {'phase':<9} {'pending_rows':>12} {'oldest_ms':>9} {'failed':>6}  last_error")
    for n, (t, phase, pending, age, failed, err) in enumerate(samples):
        # While draining, rows where nothing but the age moved are left out.
        if phase == "draining" and 0 < n < len(samples) - 1 and pending == samples[n - 1][2]:
            continue
        print(f"  {t - t0:6.1f} {phase:<9} {pending:>12} {age:>9} {failed:>6}  {err[:60]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--recs", type=int, default=50)
    ap.add_argument("--reads", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sink", choices=["sqlite", "postgres", "both"])
    ap.add_argument("--kill9", type=int, default=0, metavar="N",
                    help="kill -9 Granary N times during the load (AOF on)")
    ap.add_argument("--pg-outage", type=float, default=30, metavar="SECONDS",
                    help="with PostgreSQL: one more run with it stopped this long (0: none)")
    a = ap.parse_args()
    if a.sink is None:
        a.sink = "both" if pg_bin() else "sqlite"
        if a.sink == "sqlite":
            print("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin): SQLite only")
    if a.sink != "sqlite" and not pg_bin():
        raise SystemExit("no PostgreSQL binaries in /usr/lib/postgresql/*/bin "
                         "(apt-get install postgresql)")
    tmp = tempfile.mkdtemp(prefix="clicklog-")
    os.chmod(tmp, 0o755)  # PostgreSQL runs as its own user, below
    pg = None
    results = []
    try:
        if a.sink in ("sqlite", "both"):
            work = os.path.join(tmp, "sqlite")
            os.mkdir(work)
            db = os.path.join(work, "clicklog.db")
            results.append(story(a, SqliteTables(db), f"sqlite:{db}", work, kills=a.kill9))
        if a.sink in ("postgres", "both"):
            pg = Postgres(tmp)
            runs = [("load", a.kill9, 0)]
            if a.pg_outage > 0:
                runs.append(("outage", 0, a.pg_outage))
            for name, kills, out_s in runs:
                work = os.path.join(tmp, name)
                os.mkdir(work)
                url = pg.create_db(f"clicklog_{name}")
                results.append(story(a, PostgresTables(pg, f"clicklog_{name}"), url, work,
                                     kills=kills, pg=pg, outage_s=out_s))
    finally:
        if pg:
            pg.shutdown()
    if all(r == OK for r in results):
        shutil.rmtree(tmp, ignore_errors=True)
        print("OK: every sink's tables equal the rows computed independently")
        return 0
    print(f"FAILED (logs kept in {tmp})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
