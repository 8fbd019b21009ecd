"""Retention: which clips the rules keep (Art. 19, 20, cases, holds) and which a sweep may purge."""
