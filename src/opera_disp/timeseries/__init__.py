"""The time series: rebased, corrected, re-referenced displacement cubes and velocity."""
