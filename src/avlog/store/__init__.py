"""The store: content-addressed objects, the SQLite catalog and the audit chain.

Everything else stands on this package; it imports nothing from ``ingest``,
``iso``, ``retention`` or the CLI.
"""
