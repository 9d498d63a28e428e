"""Node-facing radio adapters. Each transport lives in its own subpackage and is loaded by name
through the ``bridged.transports`` entry-point group, only when the configuration uses it."""
