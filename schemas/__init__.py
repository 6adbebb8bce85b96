"""The SQL of contract 2, applied in file-name order."""
