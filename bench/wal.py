"""What a run's commits wrote to a SQLite write-ahead log, by table and index.

Usage: python3 bench/wal.py DB SETUP_FROM RUN_FROM RUN_TO CHECKOUTS

Reads DB's log (DB-wal): frames SETUP_FROM..RUN_FROM were written by a bench run that only
set up its products and stock, RUN_FROM..RUN_TO by a run of CHECKOUTS checkouts with the
same setup; the difference is what the checkouts wrote. Each frame's page is mapped to the
table or index it belongs to through SQLite's `dbstat`, read on a copy of DB and its log (so
the files under study are not touched). Prints commits and frames per checkout, then each
table's or index's frames per checkout, most first. Run by `bench/wal.sh`.
"""

import os
import shutil
import sqlite3
import struct
import sys
import tempfile
from collections import Counter

WAL_HEADER = 32
FRAME_HEADER = 24


def frames(wal_path, first, last):
    """(page number, is a commit) of frames `first`..`last` (0-based, `last` excluded)."""
    with open(wal_path, "rb") as wal:
        header = wal.read(WAL_HEADER)
        if len(header) < WAL_HEADER:
            return []
        page_size = struct.unpack(">I", header[8:12])[0]
        salts = header[16:24]
        out = []
        for index in range(first, last):
            wal.seek(WAL_HEADER + index * (FRAME_HEADER + page_size))
            frame = wal.read(FRAME_HEADER)
            if len(frame) < FRAME_HEADER or frame[8:16] != salts:
                sys.exit(f"{wal_path}: frame {index} is not of this log's generation "
                         "(checkpointed during the run?)")
            page, commit_size = struct.unpack(">II", frame[:8])
            out.append((page, commit_size != 0))
        return out


def owners(db_path):
    """Page number → the table or index it belongs to, from a copy of the files."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy.db")
        shutil.copyfile(db_path, copy)
        if os.path.exists(db_path + "-wal"):
            shutil.copyfile(db_path + "-wal", copy + "-wal")
        conn = sqlite3.connect(copy)
        pages = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        conn.close()
        return pages


def main():
    db = sys.argv[1]
    setup_from, run_from, run_to, checkouts = (int(a) for a in sys.argv[2:6])
    setup = frames(db + "-wal", setup_from, run_from)
    run = frames(db + "-wal", run_from, run_to)
    pages = owners(db)
    tree = lambda page: pages.get(page, "(freed since)")
    commits = sum(c for _, c in run) - sum(c for _, c in setup)
    by_tree = Counter(tree(page) for page, _ in run)
    by_tree.subtract(Counter(tree(page) for page, _ in setup))
    print(f"{os.path.basename(db)}: {commits / checkouts:.2f} commits and "
          f"{(len(run) - len(setup)) / checkouts:.1f} frames a checkout "
          f"({len(run)} frames in the run, {len(setup)} in a setup alone)")
    for name, n in sorted(by_tree.items(), key=lambda item: -item[1]):
        if abs(n) / checkouts >= 0.05:
            print(f"  {n / checkouts:6.2f}  {name}")


if __name__ == "__main__":
    main()
