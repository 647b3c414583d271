#!/usr/bin/env python3
"""The raw SQLite ceiling for `bench/run.sh`: the pgbench checkout (../shared/bench/checkout.sql)
as the same three short transactions on one SQLite file in WAL mode with synchronous=NORMAL
(Till's settings), one writer, for SECONDS seconds. Prints checkouts per second.

    python3 bench/raw_sqlite.py PATH [SECONDS]
"""
import json
import os
import random
import sqlite3
import sys
import time

SKUS = 10_000


def main() -> None:
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(
        """
        CREATE TABLE inventory (sku INTEGER PRIMARY KEY, on_hand INTEGER NOT NULL,
          reserved INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE reservation (id INTEGER PRIMARY KEY AUTOINCREMENT, sku INTEGER NOT NULL,
          qty INTEGER NOT NULL, buyer INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'held',
          created_at INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, buyer INTEGER NOT NULL,
          sku INTEGER NOT NULL, qty INTEGER NOT NULL, amount_cents INTEGER NOT NULL,
          reservation_id INTEGER NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE payment (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL,
          amount_cents INTEGER NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, aggregate_id INTEGER NOT NULL,
          event_type TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL DEFAULT 0);
        """
    )
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO inventory (sku, on_hand) VALUES (?, ?)",
        ((s, 10**12) for s in range(1, SKUS + 1)),
    )
    db.execute("COMMIT")
    done = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        sku, q, buyer = random.randint(1, SKUS), random.randint(1, 3), random.randint(1, 10**9)
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE inventory SET reserved = reserved + ? WHERE sku = ? AND on_hand - reserved >= ?"
            " RETURNING on_hand - reserved",
            (q, sku, q),
        ).fetchone()
        res_id = db.execute(
            "INSERT INTO reservation (sku, qty, buyer) VALUES (?, ?, ?) RETURNING id", (sku, q, buyer)
        ).fetchone()[0]
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        order_id = db.execute(
            "INSERT INTO orders (buyer, sku, qty, amount_cents, reservation_id, status)"
            " VALUES (?, ?, ?, ?, ?, 'pending') RETURNING id",
            (buyer, sku, q, 1999 * q, res_id),
        ).fetchone()[0]
        db.execute(
            "INSERT INTO payment (order_id, amount_cents, status) VALUES (?, ?, 'authorized')",
            (order_id, 1999 * q),
        )
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE inventory SET on_hand = on_hand - ?, reserved = reserved - ? WHERE sku = ?",
            (q, q, sku),
        )
        db.execute("UPDATE orders SET status = 'confirmed' WHERE id = ?", (order_id,))
        payload = json.dumps({"order_id": order_id, "sku": sku, "qty": q, "buyer": buyer})
        db.execute(
            "INSERT INTO outbox (aggregate_id, event_type, payload) VALUES (?, 'order_confirmed', ?)",
            (order_id, payload),
        )
        db.execute("COMMIT")
        done += 1
    print(f"{done / (time.monotonic() - started):.0f}")
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


if __name__ == "__main__":
    main()
