"""The prover node's job queue: SQLite in the workspace, so a restart loses no accepted job.

A job is one circuit, one or more inputs (its items), a creator and whether to mint. Each
item moves ``queued -> proving -> proved [-> minting] -> done`` (or ``failed``); every step is
one committed transaction, so after a kill an item ``proving`` is proven again and an item
``minting`` is minted again, which the mint resumes rather than repeats (the contract's replay
guard, and the queue's own record of the tokens). A token id belongs to one item at most
(``item_tokens``): recording a mint takes the id from any item that held it, which goes back to
``proved`` to be minted (or found) again. The file is private to its owner (0600): it holds
every submitted input.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    circuit TEXT NOT NULL,
    creator TEXT,
    mint INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    bundle TEXT,
    tokens TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (job, idx)
);
CREATE INDEX IF NOT EXISTS items_by_status ON items(status, job, idx);
CREATE TABLE IF NOT EXISTS item_tokens (
    token INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    idx INTEGER NOT NULL
);
"""
PENDING = ("queued", "proving", "proved", "minting")
FINAL = ("done", "failed")


@dataclass
class Item:
    job: str
    idx: int
    status: str
    bundle: str | None = None
    tokens: list[int] = field(default_factory=list)
    error: str | None = None
    attempts: int = 0


@dataclass
class Job:
    id: str
    created: float
    circuit: str
    creator: str | None
    mint: bool
    items: list[Item]

    @property
    def status(self) -> str:
        states = {i.status for i in self.items}
        if states <= {"done"}:
            return "done"
        if states <= set(FINAL):
            return "failed" if states == {"failed"} else "partial"
        return "queued" if states == {"queued"} else "running"

    @property
    def progress(self) -> dict[str, int]:
        counts = {s: 0 for s in (*PENDING, *FINAL)}
        for i in self.items:
            counts[i.status] += 1
        return counts

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status, "progress": self.progress}


class Queue:
    """One SQLite file; safe across the node's threads (one connection each, WAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite gives -wal/-shm its mode
        for f in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            if f.exists():
                f.chmod(0o600)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(SCHEMA)
            # queues from before item_tokens: index their tokens (a duplicate stays with the
            # first item; reconciling with the chain settles the other)
            if db.execute("SELECT COUNT(*) FROM item_tokens").fetchone()[0] == 0:
                db.execute("INSERT OR IGNORE INTO item_tokens SELECT value, job, idx FROM items, "
                           "json_each(items.tokens) WHERE items.tokens IS NOT NULL")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an accepted job survives a power cut too
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def _tx(self, fn):
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
            db.execute("COMMIT")
            return out
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---- submitting ----

    def pending(self) -> int:
        """Items not yet finished: what the queue bound counts."""
        q = f"SELECT COUNT(*) FROM items WHERE status IN ({','.join('?' * len(PENDING))})"
        return self._db().execute(q, PENDING).fetchone()[0]

    def submit(self, circuit: str, inputs: list[list[float]], creator: str | None, mint: bool,
               limit: int) -> str | None:
        """Accept a job atomically, or None when it would take the queue past ``limit`` items."""
        job = uuid.uuid4().hex[:16]
        now = time.time()

        def add(db):
            pending = db.execute(f"SELECT COUNT(*) FROM items WHERE status IN ({','.join('?' * len(PENDING))})",
                                 PENDING).fetchone()[0]
            if pending + len(inputs) > limit:
                return None
            db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)", (job, now, circuit, creator, int(mint)))
            db.executemany("INSERT INTO items (job, idx, input, status, updated) VALUES (?, ?, ?, 'queued', ?)",
                           [(job, i, json.dumps(x), now) for i, x in enumerate(inputs)])
            return job

        return self._tx(add)

    # ---- reading ----

    def job(self, job_id: str) -> Job | None:
        db = self._db()
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        items = [_item(r) for r in db.execute("SELECT * FROM items WHERE job = ? ORDER BY idx", (job_id,))]
        return Job(row["id"], row["created"], row["circuit"], row["creator"], bool(row["mint"]), items)

    def jobs(self, limit: int = 100) -> list[Job]:
        ids = [r[0] for r in self._db().execute("SELECT id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]
        return [j for j in map(self.job, ids) if j is not None]

    def input_of(self, job: str, idx: int) -> list[float]:
        row = self._db().execute("SELECT input FROM items WHERE job = ? AND idx = ?", (job, idx)).fetchone()
        return json.loads(row[0])

    # ---- the worker's side ----

    def recover(self) -> int:
        """After a restart: what was being proven is proven again, what was being minted is
        minted again (resumed). Returns how many items were picked up."""
        def fix(db):
            a = db.execute("UPDATE items SET status = 'queued' WHERE status = 'proving'").rowcount
            b = db.execute("UPDATE items SET status = 'proved' WHERE status = 'minting'").rowcount
            return a + b
        return self._tx(fix)

    def next_circuit(self) -> str | None:
        row = self._db().execute("SELECT jobs.circuit FROM items JOIN jobs ON jobs.id = items.job WHERE "
                                 "items.status = 'queued' ORDER BY jobs.created, items.job, items.idx LIMIT 1").fetchone()
        return None if row is None else row[0]

    def requeue(self, keys: list[tuple[str, int]]) -> None:
        self._set(keys, "queued")

    def back_to_proved(self, keys: list[tuple[str, int]]) -> None:
        self._set(keys, "proved")

    def _set(self, keys: list[tuple[str, int]], status: str) -> None:
        self._tx(lambda db: db.executemany("UPDATE items SET status = ?, updated = ? WHERE job = ? AND idx = ?",
                                           [(status, time.time(), job, idx) for job, idx in keys]))

    def claim(self, n: int, same_circuit: bool = False) -> list[tuple[str, str, int]]:
        """Take up to ``n`` queued items, oldest first, for proving: (circuit, job, idx). With
        ``same_circuit`` they all belong to the first item's circuit (one batch proof)."""
        def take(db):
            rows = db.execute("SELECT items.job, items.idx, jobs.circuit FROM items JOIN jobs ON jobs.id = items.job "
                              "WHERE items.status = 'queued' ORDER BY jobs.created, items.job, items.idx LIMIT ?",
                              (max(n, 1) * 8,)).fetchall()
            if same_circuit and rows:
                rows = [r for r in rows if r["circuit"] == rows[0]["circuit"]]
            rows = rows[:n]
            now = time.time()
            db.executemany("UPDATE items SET status = 'proving', attempts = attempts + 1, updated = ? "
                           "WHERE job = ? AND idx = ?", [(now, r["job"], r["idx"]) for r in rows])
            return [(r["circuit"], r["job"], r["idx"]) for r in rows]
        return self._tx(take)

    def proved(self, keys: list[tuple[str, int]], bundle: str) -> None:
        def mark(db):
            for job, idx in keys:
                mint = db.execute("SELECT mint FROM jobs WHERE id = ?", (job,)).fetchone()[0]
                db.execute("UPDATE items SET status = ?, bundle = ?, error = NULL, updated = ? WHERE job = ? AND idx = ?",
                           ("proved" if mint else "done", bundle, time.time(), job, idx))
        self._tx(mark)

    def failed(self, keys: list[tuple[str, int]], error: str) -> None:
        self._tx(lambda db: db.executemany(
            "UPDATE items SET status = 'failed', error = ?, updated = ? WHERE job = ? AND idx = ?",
            [(error, time.time(), job, idx) for job, idx in keys]))

    def to_mint(self) -> list[tuple[str, list[tuple[str, int]], str | None]]:
        """Proved items of minting jobs, grouped by bundle: (bundle, items in batch order, creator)."""
        rows = self._db().execute("SELECT items.job, items.idx, items.bundle, jobs.creator FROM items JOIN jobs "
                                  "ON jobs.id = items.job WHERE items.status = 'proved' "
                                  "ORDER BY jobs.created, items.job, items.idx").fetchall()
        groups: dict[str, tuple[list[tuple[str, int]], str | None]] = {}
        for r in rows:
            groups.setdefault(r["bundle"], ([], r["creator"]))[0].append((r["job"], r["idx"]))
        return [(bundle, keys, creator) for bundle, (keys, creator) in groups.items()]

    def minting(self, keys: list[tuple[str, int]]) -> None:
        self._set(keys, "minting")

    def minted(self, keys: list[tuple[str, int]], tokens: list[int]) -> None:
        """Record each item's token. The chain just said whose token it is: an item that held
        the id before (its mint was lost with a chain restart) goes back to ``proved``."""
        def mark(db):
            now = time.time()
            for (job, idx), token in zip(keys, tokens):
                held = db.execute("SELECT job, idx FROM item_tokens WHERE token = ?", (token,)).fetchone()
                if held is not None and (held["job"], held["idx"]) != (job, idx):
                    _unmint(db, [(held["job"], held["idx"])], now)
                _unmint(db, [(job, idx)], now)
                db.execute("INSERT INTO item_tokens VALUES (?, ?, ?)", (token, job, idx))
                db.execute("UPDATE items SET status = 'done', tokens = ?, updated = ? WHERE job = ? AND idx = ?",
                           (json.dumps([token]), now, job, idx))
        self._tx(mark)

    def minted_items(self) -> list[tuple[str, int, str, int]]:
        """Done items of minting jobs with their bundle and token: (job, idx, bundle, token)."""
        rows = self._db().execute("SELECT t.job, t.idx, items.bundle, t.token FROM item_tokens t JOIN items "
                                  "ON items.job = t.job AND items.idx = t.idx WHERE items.status = 'done' "
                                  "ORDER BY t.token").fetchall()
        return [(r["job"], r["idx"], r["bundle"], r["token"]) for r in rows]

    def remint(self, keys: list[tuple[str, int]]) -> None:
        """Items whose token the chain doesn't hold: minted again (or found, if the chain has
        their inference under another id)."""
        self._tx(lambda db: _unmint(db, keys, time.time()))


def _unmint(db: sqlite3.Connection, keys: list[tuple[str, int]], now: float) -> None:
    for job, idx in keys:
        db.execute("DELETE FROM item_tokens WHERE job = ? AND idx = ?", (job, idx))
        db.execute("UPDATE items SET status = 'proved', tokens = NULL, updated = ? WHERE job = ? AND idx = ? "
                   "AND status = 'done'", (now, job, idx))


def _item(r: sqlite3.Row) -> Item:
    return Item(r["job"], r["idx"], r["status"], r["bundle"], json.loads(r["tokens"] or "[]"), r["error"],
                r["attempts"])
