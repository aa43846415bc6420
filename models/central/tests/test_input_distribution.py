"""models/train.py writes the training distribution of every raw model input to the manifest."""

import json

import numpy as np

import helpers as h
from edgewatch_central.repo import train_module


def test_quantiles_of_a_known_column():
    train = train_module()
    x = np.stack([np.arange(11, dtype=np.float32), np.arange(11, dtype=np.float32)[::-1] * 2,
                  np.full(11, 3.5, dtype=np.float32)], axis=1)
    d = train.input_distribution(x)
    assert d["probabilities"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert d["quantiles"] == [[float(i) for i in range(11)], [float(2 * i) for i in range(11)], [3.5] * 11]


def test_the_manifest_carries_the_raw_training_distribution(tmp_path):
    train = train_module()
    sim_train = h.write_sim_csv(tmp_path / "train.csv", per_class=12, seed=1)
    sim_test = h.write_sim_csv(tmp_path / "test.csv", per_class=4, seed=2)
    train.train(train.parse_args([
        "--train", str(sim_train), "--test", str(sim_test), "--out-dir", str(tmp_path / "out"),
        "--work-dir", str(tmp_path / "work"), "--version", "dist-test", "--window-s", "1",
        "--agreement-rows", "16"]))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    d = manifest["input_distribution"]
    features, _, x = train.read_csv(sim_train)
    assert features == manifest["feature_names"]
    # Written as the decimals they name (json text "0.3", not 0.30000000000000004).
    text = (tmp_path / "out" / "manifest.json").read_text()
    assert '"probabilities": [\n   0.0,\n   0.1,\n   0.2,\n   0.3,' in text
    assert len(d["quantiles"]) == len(features)
    for i, q in enumerate(d["quantiles"]):
        col = x[:, i].astype(np.float64)
        assert len(q) == 11
        assert q[0] == col.min() and q[-1] == col.max()  # no training window is out of range
        assert q == sorted(q) and all(np.isfinite(q))
        np.testing.assert_allclose(q, np.quantile(col, d["probabilities"]), rtol=0, atol=1e-12)
    # Raw inputs, not the normalised ones the graph sees (those have median near 0 and unit spread).
    medians = np.array([q[5] for q in d["quantiles"]])
    np.testing.assert_allclose(medians, np.median(x, axis=0), rtol=1e-6, atol=1e-6)
    assert np.abs(medians).max() > 2
