"""The subset job: per-granule pipeline, bands, statistics, the summary, the exit policy."""
