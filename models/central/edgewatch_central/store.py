"""The Parquet store: Hive-partitioned files, each written whole and durably, deduplicated.

Layout (`<asset>`: the asset id percent-encoded, `_agent` for records of no asset; `<day>`:
the UTC day of the record's `created_unix_ms`):

    <store>/topic=<short name>/asset=<asset>/day=<YYYY-MM-DD>/part-<ms>-<random>.parquet
    <store>/quarantine/day=<YYYY-MM-DD>/part-<ms>-<random>.parquet   (day of the Kafka timestamp)

Invariants:

- A file is complete or absent: it is written to a hidden `.part-*.tmp` beside its final
  name, fsynced, renamed, and the folder fsynced (new folders too). Readers glob `*.parquet`,
  which never matches a temporary file.
- A record's partition is a function of the record alone (its asset and created time), so
  every copy of a record (a resend, a replay after a crash) lands in the same folder, and the
  folder's files say whether it is already there: before writing, the keys (`record_id`, or
  `quarantine_id` = kafka topic:partition:offset for quarantined messages) of every file in
  the folder are read, once per file per process, and rows already present are dropped.
- The lander commits Kafka offsets only after `write` has returned: a crash between the two
  replays messages whose rows are then dropped as duplicates.

One writer per partition folder at a time is assumed (Kafka's key is the asset id, so one
consumer owns an asset's records); two landers racing on the same folder could both write
a record they both found absent.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
import urllib.parse
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .records import Message, Row

AGENT_ASSET = "_agent"

ROW_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("type", pa.string()),
    ("record_id", pa.string()),
    ("agent_id", pa.string()),
    ("asset_id", pa.string()),
    ("sensor_id", pa.int64()),
    ("created_unix_ms", pa.int64()),
    ("model_version", pa.string()),
    ("window_start_us", pa.int64()),
    ("window_end_us", pa.int64()),
    ("agent_version", pa.string()),
    ("config_hash", pa.string()),
    ("feature_version", pa.int64()),
    ("baseline_learned_us", pa.int64()),
    ("source", pa.string()),
    ("command_body", pa.string()),
    ("kafka_topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp_ms", pa.int64()),
    ("landed_unix_ms", pa.int64()),
    ("payload", pa.string()),
])

QUARANTINE_SCHEMA = pa.schema([
    ("quarantine_id", pa.string()),
    ("topic", pa.string()),
    ("kafka_topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp_ms", pa.int64()),
    ("key_text", pa.string()),
    ("raw_text", pa.string()),
    ("raw_base64", pa.string()),
    ("reason", pa.string()),
    ("landed_unix_ms", pa.int64()),
])


def utc_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


def asset_segment(asset_id: str | None) -> str:
    """The `asset=` value: percent-encoded (DuckDB decodes it), `_agent` for no asset."""
    if asset_id is None:
        return AGENT_ASSET
    if asset_id == AGENT_ASSET:
        # An asset really named `_agent` must not share the agent records' folder.
        return "%5F" + AGENT_ASSET[1:]
    return urllib.parse.quote(asset_id, safe="")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """mkdir -p, with every new folder's parent fsynced so the folder survives a crash."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(d.parent)


def write_parquet_atomic(table: pa.Table, folder: Path) -> Path:
    """Writes `table` as a new part file in `folder`: temp file, fsync, rename, fsync folder."""
    ensure_dir(folder)
    name = f"part-{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, folder / name)
    _fsync_dir(folder)
    return folder / name


@dataclass
class Quarantined:
    msg: Message
    reason: str

    @property
    def key(self) -> str:
        return f"{self.msg.kafka_topic}:{self.msg.partition}:{self.msg.offset}"


@dataclass
class WriteResult:
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_duplicates: int = 0
    files: list[Path] = field(default_factory=list)


class _Keys:
    """The keys already stored in one partition folder, read file by file as files appear."""

    def __init__(self, key_column: str):
        self.key_column = key_column
        self.files: set[str] = set()
        self.keys: set[str] = set()

    def refresh(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for entry in os.scandir(folder):
            if entry.name.startswith(".part-") and entry.name.endswith(".tmp"):
                # Left by a crash before its rename (one writer per folder): never visible,
                # its offsets never committed.
                os.unlink(entry.path)
                continue
            if entry.name.endswith(".parquet") and entry.name not in self.files:
                column = pq.read_table(entry.path, columns=[self.key_column]).column(0)
                self.keys.update(column.to_pylist())
                self.files.add(entry.name)


class Store:
    # Partition folders whose keys stay in memory; one evicted is read again when next written.
    MAX_CACHED_FOLDERS = 2048

    def __init__(self, root: Path):
        self.root = Path(root)
        self._keys: OrderedDict[Path, _Keys] = OrderedDict()

    def partition_dir(self, topic: str, asset_id: str | None, day: str) -> Path:
        return self.root / f"topic={topic}" / f"asset={asset_segment(asset_id)}" / f"day={day}"

    def quarantine_dir(self, day: str) -> Path:
        return self.root / "quarantine" / f"day={day}"

    def _keys_of(self, folder: Path, key_column: str) -> _Keys:
        keys = self._keys.get(folder)
        if keys is None:
            keys = self._keys[folder] = _Keys(key_column)
            if len(self._keys) > self.MAX_CACHED_FOLDERS:
                self._keys.popitem(last=False)
        self._keys.move_to_end(folder)
        keys.refresh(folder)
        return keys

    def write(self, rows: list[Row], quarantined: list[Quarantined], now_ms: int | None = None) -> WriteResult:
        """Writes the rows and quarantined messages not already in the store; returns counts."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        result = WriteResult()
        by_folder: dict[Path, list[dict]] = {}
        for row in rows:
            v = row.values
            created = v.get("created_unix_ms") or v.get("kafka_timestamp_ms") or now_ms
            folder = self.partition_dir(row.topic, v.get("asset_id"), utc_day(created))
            by_folder.setdefault(folder, []).append(v)
        for folder, values in by_folder.items():
            keys = self._keys_of(folder, "record_id")
            fresh, seen = [], set()
            for v in values:
                k = v["record_id"]
                if k in keys.keys or k in seen:
                    result.duplicates += 1
                    continue
                seen.add(k)
                fresh.append({**v, "landed_unix_ms": now_ms})
            if fresh:
                path = write_parquet_atomic(pa.Table.from_pylist(fresh, schema=ROW_SCHEMA), folder)
                keys.files.add(path.name)
                keys.keys |= seen
                result.files.append(path)
                result.landed += len(fresh)
        q_by_folder: dict[Path, list[Quarantined]] = {}
        for q in quarantined:
            day = utc_day(q.msg.timestamp_ms if q.msg.timestamp_ms is not None else now_ms)
            q_by_folder.setdefault(self.quarantine_dir(day), []).append(q)
        for folder, items in q_by_folder.items():
            keys = self._keys_of(folder, "quarantine_id")
            fresh, seen = [], set()
            for q in items:
                if q.key in keys.keys or q.key in seen:
                    result.quarantine_duplicates += 1
                    continue
                seen.add(q.key)
                fresh.append(quarantine_values(q, now_ms))
            if fresh:
                path = write_parquet_atomic(pa.Table.from_pylist(fresh, schema=QUARANTINE_SCHEMA), folder)
                keys.files.add(path.name)
                keys.keys |= seen
                result.files.append(path)
                result.quarantined += len(fresh)
        return result


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def quarantine_values(q: Quarantined, now_ms: int) -> dict:
    m = q.msg
    return {
        "quarantine_id": q.key,
        "topic": m.topic,
        "kafka_topic": m.kafka_topic,
        "kafka_partition": m.partition,
        "kafka_offset": m.offset,
        "kafka_timestamp_ms": m.timestamp_ms,
        "key_text": _text(m.key),
        "raw_text": _text(m.value),
        "raw_base64": base64.b64encode(m.value).decode("ascii") if m.value is not None else None,
        "reason": q.reason,
        "landed_unix_ms": now_ms,
    }
