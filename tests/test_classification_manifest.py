"""data_manifests/classification.json is the statement of where each classification dataset
comes from: every classification task has an entry, and its missing-data error names the
entry's source."""

import json
from importlib import resources

import pytest

from winoground_eval.core.errors import DataError
from winoground_eval.core.registry import resolve_task

MANIFEST = json.loads(resources.files("winoground_eval.data_manifests").joinpath("classification.json").read_text())
NAMES = [
    "cifar10",
    "stl10",
    "pets",
    "flowers",
    "food",
    "aircraft",
    "imagenet",
    "objectnet",
    "imagenet-v2",
    "imagenet-a",
]


def test_every_entry_says_where_to_get_it():
    assert set(MANIFEST["datasets"]) == set(NAMES)
    for name, entry in MANIFEST["datasets"].items():
        assert entry["get"].startswith(("https://", "http://")) and entry["split"] and entry["n_classes"] > 0, name


@pytest.mark.parametrize("name", NAMES)
def test_missing_data_error_names_the_manifest_source(name, tmp_path):
    with pytest.raises(DataError) as exc:
        resolve_task(name)(data_dir=str(tmp_path / "nothing-here"))
    message = str(exc.value)
    host = MANIFEST["datasets"][name]["get"].split("/")[2]
    assert host in message, f"{name}: the error does not name {host}: {message}"
