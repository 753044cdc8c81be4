"""MILP/LP solver backends (installed as completeverify.solvers)."""
