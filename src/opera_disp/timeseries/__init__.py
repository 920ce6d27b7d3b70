"""Time series: moving references rebased, corrected, re-referenced; velocity."""
