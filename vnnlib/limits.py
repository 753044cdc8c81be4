"""Default hard limits of the VNN-LIB reader (completeverify.config.Limits carries the same)."""

MAX_TERMS = 100_000  # terms of the disjunctive normal form, checked while expanding
MAX_DEPTH = 10_000  # nesting of parentheses
MAX_BYTES = 1 << 25  # property text after gunzip (32 MiB)
MAX_ATOMS_PER_TERM_AVERAGE = 64  # DNF size cap: MAX_TERMS x this many atoms in all
