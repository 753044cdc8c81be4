"""VNN-LIB 1.0 property reader (installed as completeverify.vnnlib)."""
