"""Session fixtures for the emulators: started on first use, stopped at the end of the session."""

from __future__ import annotations
