"""HDF5 reading: the chunk index, chunk decoding, window reads, inspection and layout."""
