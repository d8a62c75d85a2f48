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


def test_exceptions_are_made_in_rust_with_the_builtin_bases():
    from mlops import _mlops_rs

    expected = {
        "MlopsFileNotFoundError": FileNotFoundError,
        "MlopsPermissionError": PermissionError,
        "MlopsIOError": OSError,
        "InvalidParameterError": ValueError,
        "DecodeError": ValueError,
        "ManifestError": ValueError,
        "EmptyDatasetError": ValueError,
        "PackageError": mlops.MlopsError,
        "DatabaseError": mlops.MlopsError,
        "KafkaError": mlops.MlopsError,
        "ConflictError": mlops.MlopsError,
    }
    for name, base in expected.items():
        cls = getattr(mlops, name)
        assert cls is getattr(_mlops_rs, name), name
        assert issubclass(cls, mlops.MlopsError) and issubclass(cls, base), name
        assert cls.__module__ == "mlops", name
    # Raised by the extension itself, already of the right class.
    try:
        mlops.read_image(Path("/no/such/image.png"))
    except FileNotFoundError as e:
        assert type(e) is mlops.MlopsFileNotFoundError and "/no/such/image.png" in str(e)
    else:
        raise AssertionError("no error for a missing image")


def test_stubs_match_the_extension():
    """mypy's stubtest compares _mlops_rs.pyi with the compiled module's signatures."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mlops._mlops_rs", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_optional_integrations_import_without_their_dependencies():
    """``mlops.mlflow`` and ``mlops.serve`` import without MLflow or FastAPI installed; only
    using them needs those packages."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('mlflow', 'fastapi', 'pydantic', 'uvicorn'):\n"
        "    sys.modules[name] = None  # makes `import name` fail, as if not installed\n"
        "import mlops.mlflow, mlops.serve\n"
        "assert mlops.serve.app is None\n"
        "try:\n"
        "    mlops.serve.create_app(None, '.')\n"
        "except ImportError:\n"
        "    print('create_app needs fastapi')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={
        k: v for k, v in __import__("os").environ.items() if k not in ("MLOPS_MODEL", "MLOPS_DATA_ROOT")
    })
    assert run.returncode == 0, run.stderr
    assert "create_app needs fastapi" in run.stdout
