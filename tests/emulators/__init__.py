"""Devices the tests put on the other end of a real port: radio dongles and what they hear."""
