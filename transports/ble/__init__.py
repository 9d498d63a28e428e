"""BLE transport: sensor nodes heard and read through BlueZ with bleak."""
