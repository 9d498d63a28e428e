"""What the gateway keeps across restarts: paired nodes, their stable IDs, their secrets, and
the readings not yet delivered upstream. SQLite in the state directory, plus a 0600 secrets file.
"""
