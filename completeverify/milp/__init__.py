"""milp stage."""
