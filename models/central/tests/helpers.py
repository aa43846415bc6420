"""Records as docs/feedback-loop.md describes them, simulated feature CSVs, and the test broker.

The records are built here, not copied from an agent run, so each test says what it feeds in;
test_records.py checks every factory against the repository's schemas, so a schema change the
factories do not follow fails there first.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np

from edgewatch_central.repo import MODELS, ROOT, train_module

TANSU_INSTALL = "cargo install tansu --features dynostore,libsql"
SETUP = "scripts/test.sh"
FEATURES = json.loads((MODELS / "manifest.json").read_text())["feature_names"]
CLASSES = train_module().CLASS_NAMES
T0_MS = 1_790_000_000_000  # 2026-09-21 UTC, a fixed wall clock for the records


def hex32() -> str:
    return uuid.uuid4().hex


def lineage(**kw) -> dict:
    base = {"agent_version": "0.9.0", "config_hash": "0123456789abcdef", "feature_version": 1,
            "baseline_learned_us": 1_000_000, "source": "mqtt:edgewatch/pump-1"}
    base.update(kw)
    return base


def vector(values, start_us: int, cls="outer", probability=0.9, axis=0, sensor_id=1) -> dict:
    return {"sensor_id": sensor_id, "axis": axis, "window_start_us": start_us,
            "window_end_us": start_us + 1_000_000, "values": [float(v) for v in values],
            "class": cls, "probability": probability}


def _envelope(rtype: str, version: int, asset="pump-1", agent="gw-1", created=T0_MS, sensor=1,
              start_us=10_000_000, end_us=70_000_000, model_version="edgewatch-classifier-4") -> dict:
    return {"schema_version": version, "type": rtype, "record_id": hex32(), "agent_id": agent,
            "asset_id": asset, "sensor_id": sensor, "window_start_us": start_us,
            "window_end_us": end_us, "model_version": model_version, "created_unix_ms": created}


def summary(asset="pump-1", agent="gw-1", created=T0_MS, sample=(), start_us=10_000_000,
            end_us=70_000_000, **kw) -> dict:
    n = len(FEATURES)
    rec = _envelope("summary", 2, asset, agent, created, start_us=start_us, end_us=end_us)
    rec.update({
        "windows": 60, "rms_g_mean": 0.1, "rms_g_max": 0.2, "velocity_rms_mm_s_mean": 1.0,
        "velocity_rms_mm_s_max": 1.5, "kurtosis_max": 3.1, "crest_factor_max": 4.0,
        "bearing_line_db_max": 2.0, "worst_zone": "A", "worst_level": "normal", "anomaly_max": 0.5,
        "temperature_c": 40.0, "class": "normal", "class_probability": 0.97, "active_alert": None,
        "lineage": lineage(), "anomaly_mean": 0.2, "drift": 0.1, "drift_max": 0.2,
        "input_names": FEATURES, "input_mean": [0.0] * n, "input_std": [1.0] * n,
        "input_min": [-1.0] * n, "input_max": [1.0] * n, "class_counts": {"normal": 60},
        "input_drift": None, "input_sample": list(sample)})
    rec.update(kw)
    return rec


def alert(alert_id: str, inputs=(), asset="pump-1", agent="gw-1", created=T0_MS,
          transition="raised", **kw) -> dict:
    rec = _envelope("alert", 2, asset, agent, created)
    rec.update({
        "alert_id": alert_id, "transition": transition, "level": "warning", "agent_clock_ms": 5000,
        "finding": {"kind": "outer", "reason": "classifier: outer 0.91", "class": "outer",
                    "probability": 0.91, "model_version": "edgewatch-classifier-4",
                    "bearing_line": ["bpfo", 12.0, 6.0], "velocity_rms_mm_s": 1.2, "zone": "A",
                    "decided_by": "classifier"},
        "lineage": lineage(), "input_names": FEATURES, "inputs": list(inputs)})
    rec.update(kw)
    return rec


def model_status(agent="gw-1", created=T0_MS) -> dict:
    rec = _envelope("model_status", 2, None, agent, created, sensor=None, start_us=None, end_us=None)
    rec.update({"at_unix_ms": created, "event": "received",
                "model": {"version": "edgewatch-classifier-5", "digest": "ab" * 32},
                "active": {"version": "edgewatch-classifier-4", "digest": None},
                "phase": "stable", "source": "kafka:edgewatch.models/0@3",
                "lineage": lineage(baseline_learned_us=None, source=None)})
    return rec


def command_status(command_id: str, agent="gw-1", asset="pump-1", created=T0_MS) -> dict:
    rec = _envelope("command_status", 2, asset, agent, created, sensor=None, start_us=None, end_us=None)
    rec.update({"command_id": command_id, "action": "shelve", "result": "applied", "reason": None,
                "detail": "alerts shelved until the given time", "source": "kafka:edgewatch.feedback/0@7",
                "issued_by": "j.doe", "shelve_until_unix_ms": created + 3_600_000, "at_unix_ms": created,
                "model_version": None,
                "lineage": lineage(baseline_learned_us=None, source=None)})
    return rec


def label(kind: str, asset="pump-1", agent="gw-1", created=T0_MS, **kw) -> dict:
    rec = {"schema_version": 1, "type": "label", "feedback_id": hex32(), "created_unix_ms": created,
           "operator": "j.doe", "asset_id": asset, "agent_id": agent, "label": kind}
    rec.update(kw)
    return rec


def command(body: dict | None = None, raw_body: str | None = None) -> dict:
    if raw_body is None:
        body = body or {"command_id": hex32(), "agent_id": "gw-1", "asset_id": "pump-1",
                        "action": "shelve", "shelve_until_unix_ms": T0_MS + 3_600_000,
                        "issued_by": "j.doe", "created_unix_ms": T0_MS}
        raw_body = base64.b64encode(json.dumps(body).encode()).decode()
    return {"schema_version": 1, "type": "command", "format": "edgewatch-command", "body": raw_body,
            "signatures": [{"key_id": "b1de987aa9c2dfee", "public_key": base64.b64encode(b"k" * 32).decode(),
                            "signature": base64.b64encode(b"s" * 64).decode()}]}


def dumps(rec) -> bytes:
    return json.dumps(rec).encode()


# --- simulated feature CSVs (the `lab export-features` columns) ---------------------------------

def class_means(seed=7) -> np.ndarray:
    """A mean input vector per class, far enough apart for a small MLP to learn in seconds. The
    last input (temperature rise) is 0 for every class: field tests shift windows along it."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 3.0, size=(len(CLASSES), len(FEATURES)))
    means[:, -1] = 0.0
    return means


def draw(cls: str, n: int, rng, means=None, shift=None) -> np.ndarray:
    means = class_means() if means is None else means
    x = means[CLASSES.index(cls)] + rng.normal(0.0, 1.0, size=(n, len(FEATURES)))
    if shift is not None:
        x = x + shift
    return x.astype(np.float32)


def write_sim_csv(path: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    meta = train_module().META_COLUMNS
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(meta + FEATURES)
        case = 0
        for cls in CLASSES:
            for row in draw(cls, per_class, rng):
                sev = "0" if cls == "normal" else "0.6"
                snr = "" if cls in ("normal", "overheating") else "10"
                w.writerow([case, cls, sev, snr, 25600, 1500.0, "y", 1.0] + [repr(float(v)) for v in row])
                case += 1
    return path


# --- the test broker --------------------------------------------------------------------------

def tansu_program() -> str:
    found = shutil.which("tansu")
    if found:
        return found
    cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin" / "tansu"
    if cargo_bin.is_file():
        return str(cargo_bin)
    raise AssertionError(f"`tansu` (the test Kafka broker) is not installed: install with: "
                         f"{TANSU_INSTALL} ({SETUP} does this)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A tansu broker on a free loopback port, sqlite storage in its own folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.program = tansu_program()
        url = f"tcp://127.0.0.1:{self.port}"
        self.log = open(folder / "tansu.log", "ab")
        # A relative sqlite path, resolved in the broker's working directory.
        self.proc = subprocess.Popen(
            [self.program, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "sqlite://tansu.db"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, "RUST_LOG": "warn"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"tansu did not listen on {self.port}: {(folder / 'tansu.log').read_text()}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_topic(self, name: str, partitions: int = 1) -> None:
        out = subprocess.run([self.program, "topic", "create", name, "--partitions", str(partitions),
                              "--broker", f"tcp://127.0.0.1:{self.port}"], capture_output=True, text=True)
        assert out.returncode == 0, f"tansu topic create {name}: {out.stdout}{out.stderr}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def produce(bootstrap: str, messages: list[tuple[str, str | None, bytes]]) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "compression.type": "lz4"})
    errors = []
    for topic, key, value in messages:
        p.produce(topic, key=key, value=value,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    left = p.flush(30)
    assert left == 0 and not errors, f"produce: {left} not delivered, errors {errors}"
