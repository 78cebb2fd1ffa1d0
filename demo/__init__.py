"""`python -m demo`: the whole trust story on a local chain (see demo/__main__.py)."""
