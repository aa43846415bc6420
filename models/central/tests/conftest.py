import shutil
from pathlib import Path

import pytest

from edgewatch_central.records import TOPICS, SchemaRegistry
from edgewatch_central.repo import SCHEMAS

from helpers import Tansu

@pytest.fixture(scope="session")
def schemas_dir(tmp_path_factory) -> Path:
    """A copy of the repository's schemas/ (current and frozen versions); every topic the
    lander reads has one."""
    d = tmp_path_factory.mktemp("schemas")
    shutil.copytree(SCHEMAS, d, dirs_exist_ok=True)
    for topic in TOPICS:
        assert (d / f"edgewatch.{topic}.json").exists(), f"schemas/ lacks edgewatch.{topic}.json"
    return d


@pytest.fixture(scope="session")
def registry(schemas_dir) -> SchemaRegistry:
    return SchemaRegistry(schemas_dir)


@pytest.fixture
def tansu(tmp_path):
    broker = Tansu(tmp_path)
    yield broker
    broker.stop()
