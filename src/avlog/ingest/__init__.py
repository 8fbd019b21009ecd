"""Ingest: read recordings from a card, copy and prove them into the store, record them."""
