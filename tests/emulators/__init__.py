"""Emulators of the radios' far side, for the integration tests."""
