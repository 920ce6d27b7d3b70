"""Pictures and listings: static maps, the footprint map, search-result tables."""
