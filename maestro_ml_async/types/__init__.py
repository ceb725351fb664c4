"""Pydantic data models returned by the sub-clients."""
