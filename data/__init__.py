"""The project's own data files: taxonomy with keywords, stop words, demo messages."""
