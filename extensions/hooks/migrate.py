"""A small expand/contract migration tool for the hook examples (SQLite, standard library only).

    python3 migrate.py --db shop.db --migrations migrations/shop expand v3   # before v3 rolls out: additive changes only
    python3 migrate.py --db shop.db --migrations migrations/shop contract    # once no release needs the old shape

``<migrations>/<version>/expand.sql`` holds what both the running release and
``<version>`` can live with (new columns, new tables, backfills);
``<version>/contract.sql`` what removes the old shape. ``contract`` applies the
contract step of every version whose expand step was applied and whose contract
step was not, oldest first. Each step runs in one transaction and is recorded
in ``schema_migrations``, so running a step twice changes nothing. Prints a JSON
line: the steps applied now.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def applied(db: sqlite3.Connection) -> list[tuple[str, str]]:
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT, phase TEXT, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)")
    return [(row[0], row[1]) for row in db.execute("SELECT version, phase FROM schema_migrations ORDER BY rowid")]


def run(db: sqlite3.Connection, migrations: Path, version: str, phase: str) -> bool:
    if (version, phase) in applied(db):
        return False
    script = migrations / version / f"{phase}.sql"
    sql = script.read_text() if script.is_file() else ""
    try:  # one transaction: all of the step or nothing
        db.executescript(f"BEGIN; {sql}")
        db.execute("INSERT INTO schema_migrations (version, phase) VALUES (?, ?)", (version, phase))
        db.execute("COMMIT")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrate.py")
    parser.add_argument("--db", required=True)
    parser.add_argument("--migrations", required=True, type=Path)
    parser.add_argument("phase", choices=["expand", "contract"])
    parser.add_argument("version", nargs="?")
    options = parser.parse_args(argv)
    if options.phase == "expand" and not options.version:
        parser.error("expand needs the version being released")
    if options.version and not options.version.replace(".", "").replace("-", "").replace("_", "").isalnum():
        parser.error(f"a version is letters, digits and . - _, not {options.version!r}")
    db = sqlite3.connect(options.db, isolation_level=None)
    done = []
    if options.phase == "expand":
        if run(db, options.migrations, options.version, "expand"):
            done.append(f"{options.version} expand")
    else:
        steps = applied(db)
        for version in [v for v, phase in steps if phase == "expand" and (v, "contract") not in steps]:
            if run(db, options.migrations, version, "contract"):
                done.append(f"{version} contract")
    print(json.dumps({"applied": done, "changed": bool(done)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
