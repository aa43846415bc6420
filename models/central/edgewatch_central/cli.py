"""`edgewatch-central` (also `python -m edgewatch_central`): land, query. Each subcommand's --help says what it does; models/central/README.md says how
they fit together."""

from __future__ import annotations

import argparse
import sys

from . import land, query
from .land import DEFAULT_GROUP
from .records import DEFAULT_PREFIX
from .repo import SCHEMAS, SetupError


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgewatch-central", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("land", help="consume the fleet's topics into the Parquet store",
                       description=land.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", required=True, help="Kafka bootstrap servers, HOST:PORT[,...]")
    p.add_argument("--store", required=True, help="the store's root folder")
    p.add_argument("--schemas", default=str(SCHEMAS), help="the JSON Schemas folder (default: the repository's schemas/)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic name prefix (the agent's [kafka] prefix)")
    p.add_argument("--group", default=DEFAULT_GROUP, help="consumer group id")
    p.add_argument("--once", action="store_true", help="drain what is there, then exit")
    p.add_argument("--flush-records", type=int, default=5000, help="write and commit every N messages")
    p.add_argument("--flush-seconds", type=float, default=10.0, help="... or every S seconds")
    p.add_argument("--idle-timeout-s", type=float, default=10.0,
                   help="--once: stop after this long without a message even before the partitions' ends")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                   help="further librdkafka settings (e.g. security.protocol=ssl); repeatable")
    p.set_defaults(func=land.main)

    p = sub.add_parser("query", help="run SQL over the store in DuckDB", description=query.__doc__)
    p.add_argument("--store", required=True)
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("--max-rows", type=int, default=100, help="table rows to show")
    p.add_argument("sql", help="the query; views: summaries, alerts, model_status, command_status, feedback, quarantine")
    p.set_defaults(func=query.main)

    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SetupError as e:
        print(f"edgewatch-central: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"edgewatch-central {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
