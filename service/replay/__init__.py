"""Replay and re-drive: recorded or dead-lettered events sent to the service again.

``delivery`` sends requests (to a URL, or in-process through the app itself), ``rounds`` sends
again what the platform would redeliver, ``dry_run`` says what would run, ``redrive`` takes
events out of a dead-letter subscription, and ``publishing`` turns recorded events back into
the Pub/Sub messages that carry them. The click commands live in ``service.cli``.
"""
