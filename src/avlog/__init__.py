"""avlog: verified ingest and long-term keeping of law-enforcement audio-video recordings."""

__version__ = "0.1.0"
