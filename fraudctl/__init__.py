"""fraudctl: operator toolchain for real-time ML fraud detection."""

__version__ = "0.1.0"
