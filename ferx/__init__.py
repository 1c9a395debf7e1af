"""ferx: a reproducible mini-Xception facial-expression pipeline on FER2013."""

__version__ = "0.1.0"
