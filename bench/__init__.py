"""The benchmark suite: ``python -m bench`` runs them all (see bench/README.md)."""
