"""bridged: a LwM2M gateway that exposes BLE and IEEE 802.15.4 sensor nodes to LwM2M servers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bridged")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
