"""Pollen's shared core: what the node daemon and the client both need.

`client/` and `node/` never import each other; shared code (wire format, receipts and hashing,
chain bindings, the content store, model partitioning) lives here.
"""

__version__ = "0.1.0"
