"""Where the repository's shared parts are: the JSON Schemas, the `lab` tool, models/train.py.

The package is installed editable from models/central (the README's install command), so the
repository root is three folders above this file. Every command takes an option to point
elsewhere (`--schemas`, `--lab`), and `EDGEWATCH_LAB` names a `lab` binary.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"
MODELS = ROOT / "models"
TRAIN_PY = MODELS / "train.py"
LAB_BUILD = "cargo build -p edgewatch-lab"


class SetupError(RuntimeError):
    """Something this package needs is missing; the message names the command that sets it up."""


def find_lab(explicit: str | os.PathLike | None = None) -> Path:
    """The `lab` binary: `explicit`, else $EDGEWATCH_LAB, else the newer of the workspace's
    target/release/lab and target/debug/lab (scripts/test.sh builds the debug one)."""
    for candidate in (explicit, os.environ.get("EDGEWATCH_LAB")):
        if candidate:
            path = Path(candidate)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise SetupError(f"{path}: no such executable `lab` (build it with: {LAB_BUILD})")
            return path
    built = [p for p in (ROOT / "target" / "release" / "lab", ROOT / "target" / "debug" / "lab")
             if p.is_file() and os.access(p, os.X_OK)]
    if not built:
        raise SetupError(f"the `lab` tool is not built: run `{LAB_BUILD}` in the repository "
                         "(or set EDGEWATCH_LAB to a lab binary)")
    return max(built, key=lambda p: p.stat().st_mtime)


_train = None


def train_module():
    """models/train.py as a module (its own training code, imported, never copied)."""
    global _train
    if _train is None:
        if not TRAIN_PY.is_file():
            raise SetupError(f"{TRAIN_PY} is missing: install edgewatch_central editable from "
                             "the repository (models/central/README.md)")
        spec = importlib.util.spec_from_file_location("edgewatch_train", TRAIN_PY)
        module = importlib.util.module_from_spec(spec)
        sys.modules["edgewatch_train"] = module
        spec.loader.exec_module(module)
        _train = module
    return _train
