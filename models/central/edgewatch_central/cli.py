"""`edgewatch-central` (also `python -m edgewatch_central`): land, query, build-trainset,
retrain, publish. Each subcommand's --help says what it does; models/central/README.md says how
they fit together."""

from __future__ import annotations

import argparse
import sys

from . import land, query, retrain, trainset
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

    p = sub.add_parser("build-trainset", help="join feedback labels to reported model inputs",
                       description=trainset.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True)
    p.add_argument("--sim-train", required=True, help="simulated training CSV (lab export-features)")
    p.add_argument("--out", required=True, help="folder for train.csv, heldback.csv, lineage.csv, trainset.json")
    p.add_argument("--holdback", type=float, default=0.25, help="share of each class's label groups held back")
    p.add_argument("--field-weight", type=int, default=1,
                   help="write each training-side field window this many times (its weight against the simulated rows)")
    p.set_defaults(func=trainset.main)

    p = sub.add_parser("retrain", help="train a candidate, gate it against the active model, package it",
                       description=retrain.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainset", required=True, help="a build-trainset folder")
    p.add_argument("--sim-test", required=True, help="simulated held-out CSV (lab export-features, another seed)")
    p.add_argument("--out", required=True, help="folder for the candidate, the model card and the package")
    p.add_argument("--version", required=True, help="the candidate's model version")
    p.add_argument("--key", required=True, help="secret key that signs the package (lab model keygen)")
    active = p.add_mutually_exclusive_group()
    active.add_argument("--active-package", help="the active model as a package (.ewpkg)")
    active.add_argument("--active-manifest", help="the active model's manifest.json (default: models/manifest.json)")
    p.add_argument("--data", help="real recordings folder (default: $EDGEWATCH_DATA, else ../shared/data beside the repository)")
    p.add_argument("--no-real", action="store_true", help="do not evaluate on real recordings")
    p.add_argument("--variant", choices=["int8", "float"], default="int8", help="model variant compared (the agent's default: int8)")
    p.add_argument("--macro-tolerance", type=float, default=0.01)
    p.add_argument("--class-tolerance", type=float, default=0.05)
    p.add_argument("--z", type=float, default=2.0)
    p.add_argument("--min-fault-snr-db", default="-5", help="as models/train.sh (empty: off)")
    p.add_argument("--hidden", default="64,32")
    p.add_argument("--lab", help="the lab binary (default: $EDGEWATCH_LAB, else the workspace's newest build)")
    p.set_defaults(func=retrain.main)

    p = sub.add_parser("publish", help="put a package on the models topic (lab model publish)")
    p.add_argument("--package", required=True)
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", help="the models topic (default: lab's, edgewatch.models)")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--lab")
    p.set_defaults(func=retrain.publish_main)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SetupError as e:
        print(f"edgewatch-central: {e}", file=sys.stderr)
        return 2
    except (retrain.RetrainError, trainset.TrainsetError, FileNotFoundError, ValueError) as e:
        print(f"edgewatch-central {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
