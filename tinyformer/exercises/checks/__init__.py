"""The checkers, one module per chapter (`ch01_vectors` checks `course/01_vectors/`)."""
