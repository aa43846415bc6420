"""`land`: the fleet's topics, consumed by a consumer group, into the Parquet store.

The loop: poll messages, turn each into a row or a quarantine entry (records.to_row), and every
`flush_records` messages or `flush_seconds` write them (store.Store.write: durable, deduplicated)
and only then commit, per partition, the offset after the last message written. A crash at any
point replays at most the messages since the last commit, and their rows are dropped as
duplicates. Partitions taken away by a rebalance are flushed and committed first.

`--once` drains: it stops when every partition assigned to it has been read up to the end it
had when `land` started (or after `idle_timeout_s` without a message), flushes and exits. The
long-running mode stops on SIGINT or SIGTERM, after a last flush.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from .records import DEFAULT_PREFIX, TOPICS, Message, Rejected, SchemaRegistry, to_row
from .store import Quarantined, Store

DEFAULT_GROUP = "edgewatch-central-land"


@dataclass
class LandConfig:
    brokers: str
    store: Path
    schemas: Path
    prefix: str = DEFAULT_PREFIX
    group_id: str = DEFAULT_GROUP
    kafka_options: dict[str, str] = field(default_factory=dict)
    flush_records: int = 5000
    flush_seconds: float = 10.0
    once: bool = False
    idle_timeout_s: float = 10.0
    assign_timeout_s: float = 60.0


def consumer_config(cfg: LandConfig) -> dict:
    conf = {
        "bootstrap.servers": cfg.brokers,
        "group.id": cfg.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
    }
    conf.update(cfg.kafka_options)
    return conf


class Lander:
    """Messages in, rows and commits out; `consumer` is a confluent_kafka.Consumer."""

    def __init__(self, consumer, store: Store, registry: SchemaRegistry, topics: dict[str, str]):
        self.consumer = consumer
        self.store = store
        self.registry = registry
        self.topics = topics  # Kafka topic -> short name
        self.rows = []
        self.quarantined: list[Quarantined] = []
        self.next_offsets: dict[tuple[str, int], int] = {}  # pending, not yet committed
        self.counts = Counter(messages=0, landed=0, duplicates=0, quarantined=0,
                              quarantine_duplicates=0, files=0)
        self.first_pending: float | None = None

    def add(self, kmsg) -> None:
        ts_type, ts = kmsg.timestamp()
        msg = Message(
            topic=self.topics[kmsg.topic()], kafka_topic=kmsg.topic(), partition=kmsg.partition(),
            offset=kmsg.offset(), timestamp_ms=ts if ts_type != 0 and ts >= 0 else None,
            key=kmsg.key(), value=kmsg.value())
        try:
            self.rows.append(to_row(msg, self.registry))
        except Rejected as e:
            self.quarantined.append(Quarantined(msg, str(e)))
        self.next_offsets[(msg.kafka_topic, msg.partition)] = msg.offset + 1
        self.counts["messages"] += 1
        if self.first_pending is None:
            self.first_pending = time.monotonic()

    def pending(self) -> int:
        return len(self.rows) + len(self.quarantined)

    def flush(self) -> None:
        """Writes what is pending, then commits its offsets (never the other way round)."""
        if not self.next_offsets:
            return
        r = self.store.write(self.rows, self.quarantined)
        self.counts.update(landed=r.landed, duplicates=r.duplicates, quarantined=r.quarantined,
                           quarantine_duplicates=r.quarantine_duplicates, files=len(r.files))
        self.commit([TopicPartition(t, p, o) for (t, p), o in sorted(self.next_offsets.items())])
        self.rows, self.quarantined, self.next_offsets = [], [], {}
        self.first_pending = None

    def commit(self, offsets: list[TopicPartition]) -> None:
        committed = self.consumer.commit(offsets=offsets, asynchronous=False)
        failed = [tp for tp in committed or [] if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    def on_revoke(self, consumer, partitions) -> None:
        self.flush()

    def summary(self) -> dict:
        return dict(self.counts)


def _existing_topics(consumer, wanted: list[str]) -> list[str]:
    present = consumer.list_topics(timeout=10).topics
    return [t for t in wanted if t in present and present[t].error is None]


def _watermarks(consumer, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) of every partition of `topics`, asked before the consumer fetches anything:
    a broker that holds a fetch for its full wait (tansu does) answers later queries only
    after it."""
    out = {}
    meta = consumer.list_topics(timeout=10).topics
    for t in topics:
        for p in meta[t].partitions:
            out[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
    return out


def run(cfg: LandConfig, log=sys.stderr) -> dict:
    registry = SchemaRegistry(cfg.schemas)
    store = Store(cfg.store)
    topics = {cfg.prefix + t: t for t in TOPICS}
    consumer = Consumer(consumer_config(cfg))
    lander = Lander(consumer, store, registry, topics)
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        wanted = list(topics)
        marks = None
        if cfg.once:
            wanted = _existing_topics(consumer, wanted)
            if not wanted:
                print(f"land: none of {', '.join(topics)} exists: nothing to land", file=log)
                return lander.summary()
            marks = _watermarks(consumer, wanted)
        consumer.subscribe(wanted, on_revoke=lander.on_revoke)
        _loop(cfg, consumer, lander, stop, marks, log)
        lander.flush()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        consumer.close()
    return lander.summary()


def _loop(cfg: LandConfig, consumer, lander: Lander, stop: dict, marks, log) -> None:
    """Consumes until stopped or, with `marks` (--once), until caught up with them."""
    started = time.monotonic()
    starts: dict[tuple[str, int], int] = {}  # --once: where each assigned partition started
    last_message = time.monotonic()
    while not stop["now"]:
        msgs = consumer.consume(num_messages=500, timeout=0.5)
        now = time.monotonic()
        for kmsg in msgs:
            err = kmsg.error()
            if err is not None:
                if err.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                if err.fatal():
                    raise KafkaException(err)
                print(f"land: {err}", file=log)
                continue
            lander.add(kmsg)
            last_message = now
        if lander.pending() >= cfg.flush_records or (
                lander.first_pending is not None and now - lander.first_pending >= cfg.flush_seconds):
            lander.flush()
        if marks is None:
            continue
        assignment = consumer.assignment()
        if not assignment:
            if now - started > cfg.assign_timeout_s:
                raise RuntimeError(f"land --once: no partition assigned within {cfg.assign_timeout_s:g} s "
                                   f"(another member of group {cfg.group_id!r} may hold them)")
            continue
        new = [tp for tp in assignment if (tp.topic, tp.partition) not in starts]
        if new:
            for c in consumer.committed(new, timeout=10):
                low = marks[(c.topic, c.partition)][0]
                starts[(c.topic, c.partition)] = c.offset if c.offset >= 0 else low
            last_message = now  # idle time counts from the assignment
        if _caught_up(consumer, lander, assignment, starts, marks):
            return
        if now - last_message > cfg.idle_timeout_s:
            print(f"land --once: no message for {cfg.idle_timeout_s:g} s before the partitions' "
                  "ends (transaction markers or a stalled broker): stopping", file=log)
            return


def _caught_up(consumer, lander: Lander, assignment, starts, marks) -> bool:
    """Every assigned partition read up to the end it had when land started."""
    for tp in consumer.position(assignment):
        key = (tp.topic, tp.partition)
        at = max(starts[key], lander.next_offsets.get(key, -1), tp.offset)
        if at < marks[key][1]:
            return False
    return True


def parse_options(options: list[str]) -> dict[str, str]:
    out = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            raise ValueError(f"--kafka-option {opt!r}: expected KEY=VALUE")
        out[key] = value
    return out


def main(args) -> int:
    cfg = LandConfig(
        brokers=args.brokers, store=Path(args.store), schemas=Path(args.schemas), prefix=args.prefix,
        group_id=args.group, kafka_options=parse_options(args.kafka_option),
        flush_records=args.flush_records, flush_seconds=args.flush_seconds, once=args.once,
        idle_timeout_s=args.idle_timeout_s)
    summary = run(cfg)
    print(json.dumps(summary))
    return 0
