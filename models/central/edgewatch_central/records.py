"""From one Kafka message to one store row, or to the reason it is quarantined. Pure: no I/O
except reading the schema files once.

Topics, by their short name (the store's `topic=` partition):

| short name       | Kafka topic (default prefix `edgewatch.`) | record types       | dedup key           |
|------------------|-------------------------------------------|--------------------|---------------------|
| summaries        | edgewatch.summaries                       | summary            | record_id           |
| alerts           | edgewatch.alerts                          | alert              | record_id           |
| model-status     | edgewatch.model-status                    | model_status       | record_id           |
| command-status   | edgewatch.command-status                  | command_status     | record_id           |
| feedback         | edgewatch.feedback                        | label, command     | feedback_id; command_id of the base64 body |

Schemas: `schemas/edgewatch.<short name>.json` is the current version of a topic's records;
frozen older versions sit in `schemas/v<N>/edgewatch.<short name>.json`. A schema's version
is its `schema_version` const (or, failing that, the `v<N>` folder it is in). A record is
checked against the schema of its own `schema_version`: old records stay valid after the
agent moves on, and a record of a version no schema describes is quarantined.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

TOPICS = ("summaries", "alerts", "model-status", "command-status", "feedback")
DEFAULT_PREFIX = "edgewatch."

# Envelope columns every row has (None where a record has no such field).
ENVELOPE = ("schema_version", "type", "record_id", "agent_id", "asset_id", "sensor_id",
            "created_unix_ms", "model_version", "window_start_us", "window_end_us")
LINEAGE = ("agent_version", "config_hash", "feature_version", "baseline_learned_us", "source")
INT_FIELDS = {"schema_version", "sensor_id", "created_unix_ms", "window_start_us",
              "window_end_us", "feature_version", "baseline_learned_us"}


class Rejected(Exception):
    """A record that goes to quarantine; the message is the stored reason."""


@dataclass
class Schema:
    topic: str
    version: int
    path: Path
    validator: jsonschema.protocols.Validator
    types: frozenset[str]  # the `type` values it allows (empty: not stated)


def _consts(node: Any, key: str) -> set:
    """Values a schema node allows for property `key` (const or enum), through
    allOf/anyOf/oneOf branches."""
    out: set = set()
    if not isinstance(node, dict):
        return out
    prop = node.get("properties", {}).get(key)
    if isinstance(prop, dict):
        if "const" in prop:
            out.add(prop["const"])
        out.update(prop.get("enum", []))
    for branch_key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(branch_key, []):
            out |= _consts(branch, key)
    return out


class SchemaRegistry:
    """The topics' schemas, current and frozen, read from one folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no schemas folder (give --schemas)")
        self._by_topic: dict[str, dict[int, Schema]] = {t: {} for t in TOPICS}
        folders = [(None, self.root)] + sorted(
            (int(m.group(1)), d) for d in self.root.iterdir()
            if d.is_dir() and (m := re.fullmatch(r"v(\d+)", d.name)))
        for folder_version, folder in folders:
            for topic in TOPICS:
                path = folder / f"edgewatch.{topic}.json"
                if not path.is_file():
                    continue
                doc = json.loads(path.read_text())
                versions = {v for v in _consts(doc, "schema_version") if isinstance(v, int)}
                if folder_version is not None:
                    if versions and versions != {folder_version}:
                        raise ValueError(f"{path}: schema_version {sorted(versions)} in folder v{folder_version}")
                    versions = {folder_version}
                if not versions:
                    raise ValueError(f"{path}: states no schema_version const")
                cls = jsonschema.validators.validator_for(doc)
                cls.check_schema(doc)
                types = frozenset(t for t in _consts(doc, "type") if isinstance(t, str))
                for v in versions:
                    # The current folder wins over a frozen copy of the same version.
                    if v not in self._by_topic[topic] or folder_version is None:
                        self._by_topic[topic][v] = Schema(topic, v, path, cls(doc), types)

    def versions(self, topic: str) -> list[int]:
        return sorted(self._by_topic[topic])

    def get(self, topic: str, version: int) -> Schema | None:
        return self._by_topic[topic].get(version)


@dataclass
class Message:
    """What the lander takes from Kafka."""
    topic: str  # short name
    kafka_topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


@dataclass
class Row:
    topic: str
    values: dict[str, Any] = field(default_factory=dict)


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"field {name}: {value!r} is not an integer")
    return value


def _str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(f"field {name}: {value!r} is not a string")
    return value


def _schema_error(err: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in err.absolute_path) or "(record)"
    message = err.message if len(err.message) <= 300 else err.message[:300] + "..."
    return f"schema: {where}: {message}"


def decode_command_body(record: dict) -> dict:
    """The JSON object in a command's base64 `body` (the signed bytes)."""
    body = record.get("body")
    if not isinstance(body, str):
        raise Rejected("command: body is not a base64 string")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Rejected(f"command: body is not base64: {e}") from None
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Rejected(f"command: body is not JSON: {e}") from None
    if not isinstance(decoded, dict):
        raise Rejected("command: body is not a JSON object")
    if not isinstance(decoded.get("command_id"), str) or not decoded["command_id"]:
        raise Rejected("command: body has no command_id")
    return decoded


def to_row(msg: Message, registry: SchemaRegistry) -> Row:
    """The store row of `msg`; raises Rejected with the quarantine reason."""
    if msg.value is None:
        raise Rejected("empty message (no value)")
    try:
        text = msg.value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected(f"not JSON: not UTF-8 ({e})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise Rejected(f"not JSON: {e}") from None
    if not isinstance(record, dict):
        raise Rejected(f"not a JSON object: {type(record).__name__}")
    version = record.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise Rejected(f"no integer schema_version: {version!r}")
    schema = registry.get(msg.topic, version)
    if schema is None:
        known = ", ".join(map(str, registry.versions(msg.topic))) or "none"
        raise Rejected(f"unknown schema_version {version} for topic {msg.topic} "
                       f"(schemas for versions: {known})")
    rtype = record.get("type")
    if schema.types and rtype not in schema.types:
        raise Rejected(f"unknown type {rtype!r} for topic {msg.topic} version {version} "
                       f"(expected {', '.join(sorted(schema.types))})")
    err = jsonschema.exceptions.best_match(schema.validator.iter_errors(record))
    if err is not None:
        raise Rejected(_schema_error(err))

    values: dict[str, Any] = {}
    source = record
    body_text = None
    if rtype == "command":
        source = decode_command_body(record)
        body_text = json.dumps(source, separators=(",", ":"), sort_keys=True)
        key = source["command_id"]
    elif rtype == "label":
        key = record.get("feedback_id")
    else:
        key = record.get("record_id")
    if not isinstance(key, str) or not key:
        raise Rejected(f"no dedup key (record_id / feedback_id / command_id) in a {rtype} record")
    for name in ENVELOPE:
        value = source.get(name) if name not in ("schema_version", "type") else record.get(name)
        values[name] = _int(value, name) if name in INT_FIELDS else _str(value, name)
    values["record_id"] = key
    lineage = record.get("lineage")
    lineage = lineage if isinstance(lineage, dict) else {}
    for name in LINEAGE:
        value = lineage.get(name)
        values[name] = _int(value, f"lineage.{name}") if name in INT_FIELDS else _str(value, f"lineage.{name}")
    values["command_body"] = body_text
    values["kafka_topic"] = msg.kafka_topic
    values["kafka_partition"] = msg.partition
    values["kafka_offset"] = msg.offset
    values["kafka_timestamp_ms"] = msg.timestamp_ms
    values["payload"] = text
    return Row(msg.topic, values)
