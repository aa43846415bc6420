"""DuckDB over the store: one view per topic (`summaries`, `alerts`, `model_status`,
`command_status`, `feedback`) and `quarantine`, each over its Parquet files with the Hive
partition columns (`topic`, `asset`, `day`; `day` for the quarantine). A topic with no file yet
is an empty view with the same columns, so queries never depend on what has arrived."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import duckdb
import pyarrow as pa

from .records import TOPICS
from .store import QUARANTINE_SCHEMA, ROW_SCHEMA

_DUCK_TYPES = {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT"}


def view_name(topic: str) -> str:
    return topic.replace("-", "_")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def topic_glob(store: Path, topic: str) -> str:
    return str(Path(store) / f"topic={topic}" / "*" / "*" / "*.parquet")


def quarantine_glob(store: Path) -> str:
    return str(Path(store) / "quarantine" / "*" / "*.parquet")


def _empty(schema: pa.Schema, partitions: dict[str, str]) -> str:
    cols = [f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in schema]
    cols += [f"CAST(NULL AS {t}) AS {name}" for name, t in partitions.items()]
    return "SELECT " + ", ".join(cols) + " WHERE false"


def _has_files(folder: Path, depth: int) -> bool:
    return folder.is_dir() and any(folder.glob("/".join(["*"] * depth) + "/*.parquet"))


def connect(store: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the store's views."""
    store = Path(store)
    con = duckdb.connect()
    for topic in TOPICS:
        if _has_files(store / f"topic={topic}", 2):
            body = (f"SELECT * REPLACE (CAST(day AS DATE) AS day) FROM read_parquet("
                    f"{_sql_str(topic_glob(store, topic))}, hive_partitioning = true, "
                    "hive_types_autocast = false, union_by_name = true)")
        else:
            body = _empty(ROW_SCHEMA, {"topic": "VARCHAR", "asset": "VARCHAR", "day": "DATE"})
        con.sql(f"CREATE VIEW {view_name(topic)} AS {body}")
    if _has_files(store / "quarantine", 1):
        body = (f"SELECT * REPLACE (CAST(day AS DATE) AS day) FROM read_parquet("
                f"{_sql_str(quarantine_glob(store))}, hive_partitioning = true, "
                "hive_types_autocast = false, union_by_name = true)")
    else:
        body = _empty(QUARANTINE_SCHEMA, {"day": "DATE"})
    con.sql(f"CREATE VIEW quarantine AS {body}")
    return con


def main(args) -> int:
    con = connect(Path(args.store))
    rel = con.sql(args.sql)
    if rel is None:
        return 0
    if args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(rel.columns)
        w.writerows(rel.fetchall())
    else:
        rel.show(max_width=10_000, max_rows=args.max_rows)
    return 0
