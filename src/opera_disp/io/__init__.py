"""Byte access to granules: local files, HTTPS with Earthdata Login, S3, the access policy."""
