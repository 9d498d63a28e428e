"""The LwM2M client engine: registration, bootstrap, device management and information
reporting toward one or more LwM2M servers, over aiocoap."""
