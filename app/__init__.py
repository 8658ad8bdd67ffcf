"""digits: a web service that reads handwritten digits."""

__version__ = "1.0.0"
