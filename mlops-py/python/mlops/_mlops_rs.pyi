"""Type stubs for the native module."""

__version__: str
