"""The node at run time: parameters, QoS, synchronization, transforms, diagnostics and the worker slot."""
