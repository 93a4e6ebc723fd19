"""Shared core of Spira: settings, database, storage and the small domain vocabulary every package uses."""
