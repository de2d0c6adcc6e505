"""wangge: triage of residents' messages for grid management."""

__version__ = "0.1.0"
