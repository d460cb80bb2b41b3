"""OS isolation for untrusted code. Stands alone: imports nothing from the project.

This release provides backend discovery (which isolation tools exist and actually work here);
the execution policy builds on it.
"""

from sandbox.backends import BackendInfo, detect_backends

__all__ = ["BackendInfo", "detect_backends"]
