"""Manifests (the original's ``monday.json`` JSON lines), listing, splitting, reading images."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Sample:
    """One labelled image: a path relative to the data root and a class id."""

    image_path: str
    target: int


@dataclass
class Manifest:
    """An ordered list of samples (``image_path``, ``target``)."""

    samples: List[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def image_paths(self) -> List[str]:
        """Every ``image_path``, in order."""
        return [s.image_path for s in self.samples]

    @property
    def targets(self) -> np.ndarray:
        """Every target as a ``uint32`` array, in order."""
        return np.array([s.target for s in self.samples], dtype=np.uint32)

    def to_jsonl(self) -> str:
        """JSON lines, byte-compatible with the original's manifests."""
        return "".join(
            json.dumps({"image_path": s.image_path, "target": s.target}, separators=(",", ":")) + "\n"
            for s in self.samples
        )

    @classmethod
    def from_jsonl(cls, text: str) -> "Manifest":
        """Parses JSON lines (blank lines are skipped)."""
        samples = []
        for line in text.splitlines():
            if line.strip():
                row = json.loads(line)
                samples.append(Sample(str(row["image_path"]), int(row["target"])))
        return cls(samples)

    @classmethod
    def read(cls, path: PathLike) -> "Manifest":
        """Reads a manifest file: JSON lines (``.json``/``.jsonl``) or CSV (``.csv``)."""
        return cls.from_jsonl(_rs.read_manifest(Path(path)))

    def write(self, path: PathLike) -> None:
        """Writes the manifest atomically; the format follows the extension."""
        _rs.write_manifest(self.to_jsonl(), Path(path))

    def to_dataframe(self) -> Any:
        """A pandas DataFrame with columns ``image_path`` and ``target``."""
        import pandas as pd

        return pd.DataFrame({"image_path": self.image_paths, "target": self.targets.astype(np.int64)})


@dataclass
class Listing:
    """What :func:`list_dataset` found."""

    manifest: Manifest
    classes: List[str]
    report: Dict[str, Any]


def list_dataset(root: PathLike, *, classes: Optional[Sequence[str]] = None, strict: bool = False) -> Listing:
    """Lists a class-folder data set (``root/<class>/<image>``) into a manifest.

    Classes are the sorted folder names unless ``classes`` gives them in id order; with
    ``strict``, folders not in ``classes`` are an error instead of a report entry.
    """
    jsonl, names, report = _rs.list_folder(Path(root), list(classes) if classes is not None else None, strict)
    return Listing(Manifest.from_jsonl(jsonl), list(names), json.loads(report))


def split(
    manifest: Manifest, *, test_fraction: float = 0.2, seed: int = 2022, stratified: bool = False
) -> Tuple[Manifest, Manifest]:
    """Seeded train/test split (defaults: the original's 80/20 with seed 2022)."""
    train, test = _rs.split_manifest(manifest.to_jsonl(), test_fraction, seed, stratified)
    return Manifest.from_jsonl(train), Manifest.from_jsonl(test)


def read_image(path: PathLike) -> np.ndarray:
    """Decodes an image file to ``uint8``: HxWx3 (RGB), or HxW for grey images."""
    return _rs.read_image(Path(path))
