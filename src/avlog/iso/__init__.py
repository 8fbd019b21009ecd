"""Disc images for long-term keeping (Art. 20) and evidence discs (Art. 21): plan, build, verify, burn."""
