"""cardiobench: an open benchmark suite for echocardiography foundation models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
