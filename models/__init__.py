"""Model code: the category classifier, its features, and the on-disk model format."""
