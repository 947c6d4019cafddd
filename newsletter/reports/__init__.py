"""Reports: per-issue figures and listings, counted from the records."""
