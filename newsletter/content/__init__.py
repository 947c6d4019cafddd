"""Comparisons, the tools they compare, the panel's reviews and the readers' votes."""
