"""completeverify: a sound and complete verifier for neural networks."""
