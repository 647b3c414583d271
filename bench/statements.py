"""Reads the PostgreSQL log lines `bench/statements.sh` cut out (one database, every
statement logged) and prints what one confirmed checkout (or UNIT) cost: statements by kind, and
the transactions that wrote — explicit ones and single writes outside a transaction (each
its own commit) — split into Till's and the embedded simulator's (`sim_*` tables), then
the most frequent statements.

    python3 bench/statements.py LOG_EXCERPT DATABASE CHECKOUTS [UNIT]
"""

import collections
import os
import re
import sys

LINE = re.compile(r"\[(\d+)\] \S+@(\S+) LOG:  (?:statement|execute [^:]*): (.*)")


def main(path, database, checkouts, unit):
    kinds = collections.Counter()
    shapes = collections.Counter()
    writes = collections.Counter()  # ("till" | "simulator", "transaction" | "single write")
    open_tx = {}  # pid -> statements of the transaction it has open
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            m = LINE.search(line)
            if not m or m.group(2) != database:
                continue
            pid, sql = m.group(1), m.group(3).strip()
            word = sql.split(None, 1)[0].upper() if sql else "?"
            kinds[word] += 1
            shapes[sql[:110]] += 1
            if word == "BEGIN":
                open_tx[pid] = []
            elif word in ("COMMIT", "ROLLBACK", "END"):
                done = open_tx.pop(pid, [])
                wrote = any(s.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE") for s in done)
                if word != "ROLLBACK" and wrote:
                    who = "simulator" if any("sim_" in s for s in done) else "till"
                    writes[(who, "transaction")] += 1
            elif pid in open_tx:
                open_tx[pid].append(sql)
            elif word in ("INSERT", "UPDATE", "DELETE"):
                who = "simulator" if "sim_" in sql else "till"
                writes[(who, "single write")] += 1
    n = checkouts
    total = sum(kinds.values())
    print(f"statements per {unit}: {total / n:.2f}")
    for word, count in kinds.most_common():
        print(f"  {word:<10} {count / n:6.2f}")
    print(f"commits that wrote, per {unit}:")
    for who in ("till", "simulator"):
        tx, single = writes[(who, "transaction")], writes[(who, "single write")]
        print(f"  {who:<10} {(tx + single) / n:5.2f}  ({tx / n:.2f} transactions, {single / n:.2f} single writes)")
    print(f"the most frequent statements, per {unit}:")
    for shape, count in shapes.most_common(int(os.environ.get("TOP", "30"))):
        print(f"  {count / n:5.2f}  {shape}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "confirmed checkout")
