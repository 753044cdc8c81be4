"""bab stage."""
