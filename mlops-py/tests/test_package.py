"""The Python package builds, imports and reports the Rust crate's version."""

import re
from pathlib import Path

import mlops

ROOT = Path(__file__).resolve().parents[2]


def test_version_matches_the_workspace():
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert mlops.__version__ == version


def test_package_ships_type_information():
    package = Path(mlops.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_mlops_rs.pyi").exists()
