"""The sync client, generated from the async one by ``scripts/generate_sync.py``."""
