"""The package version, read by the build backend and sent as ``data_source_version``."""

__version__ = "0.1.0"
