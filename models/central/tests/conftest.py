import shutil
from pathlib import Path

import pytest

from edgewatch_central.records import TOPICS, SchemaRegistry
from edgewatch_central.repo import SCHEMAS

from helpers import Tansu

STAND_INS = Path(__file__).parent / "stand-in-schemas"


@pytest.fixture(scope="session")
def schemas_dir(tmp_path_factory) -> Path:
    """The repository's schemas/ (current and frozen versions), with a stand-in from
    stand-in-schemas/ for each topic the repository has no schema for yet."""
    d = tmp_path_factory.mktemp("schemas")
    shutil.copytree(SCHEMAS, d, dirs_exist_ok=True)
    for topic in TOPICS:
        name = f"edgewatch.{topic}.json"
        if not (d / name).exists():
            shutil.copy(STAND_INS / name, d / name)
    return d


@pytest.fixture(scope="session")
def registry(schemas_dir) -> SchemaRegistry:
    return SchemaRegistry(schemas_dir)


@pytest.fixture
def tansu(tmp_path):
    broker = Tansu(tmp_path)
    yield broker
    broker.stop()
