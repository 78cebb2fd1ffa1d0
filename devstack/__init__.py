"""The local dev stack, used by `make demo`, `make chain`, the tests and the benchmarks, never by
a user's install: anvil (from node_modules), the chain tour (`python -m devstack.tour`), and the
process helpers that start a chain, a store, servers and operator daemons (`devstack.procs`)."""
