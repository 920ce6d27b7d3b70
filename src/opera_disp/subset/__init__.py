"""The subset product: per granule, masked COGs, quicklooks and statistics."""
