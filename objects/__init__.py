"""The LwM2M data model: definitions, paths, the instance tree and the content formats.

Nothing in this package does I/O. The engine (``bridged``) and the transports build on it, so
its types are the vocabulary of the whole daemon.
"""
