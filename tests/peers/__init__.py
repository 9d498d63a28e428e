"""Protocol peers the tests run the engine against: LwM2M servers and other endpoints."""
