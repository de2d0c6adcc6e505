"""Retrainable pipelines: data loading, training, evaluation and file scoring."""
