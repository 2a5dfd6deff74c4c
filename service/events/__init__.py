"""The edge: HTTP headers and body in, one typed event out. Pure: no I/O."""

from __future__ import annotations

from service.events.decode import decode

__all__ = ["decode"]
