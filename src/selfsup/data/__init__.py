"""Readers: raw files → samples."""
