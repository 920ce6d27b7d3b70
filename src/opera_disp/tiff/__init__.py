"""The COG encoder: TIFF bytes and tags, the streaming pyramid, its thread pool, writers."""
