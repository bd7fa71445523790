"""Offline evaluation commands: each scores the live code path on labelled data."""
