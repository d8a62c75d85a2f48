"""mlops: an MLOps pipeline for image classification under distribution shift.

The heavy lifting happens in the Rust core (``mlops-core``); this package is a thin layer over
its native module ``mlops._mlops_rs``.
"""

from mlops._mlops_rs import __version__

__all__ = ["__version__"]
