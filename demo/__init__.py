"""``make demo``: the real ``bridged`` daemon with emulated radios and a LwM2M server on
127.0.0.1, showing what the server sees. Not part of the installed product: it runs from the
repository root with ``tests`` on the path, for its emulators and test server."""
