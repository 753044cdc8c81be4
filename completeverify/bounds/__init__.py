"""bounds stage."""
