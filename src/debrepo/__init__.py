"""debrepo: a signed, multi-package Debian (APT) repository with one metadata store as its truth."""

__version__ = "0.1.0"
