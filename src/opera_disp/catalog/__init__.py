"""Catalog: which granules a job covers (explicit references, a local archive, or CMR)."""
