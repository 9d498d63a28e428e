"""IEEE 802.15.4 / 6LoWPAN transport: an OpenThread RCP dongle over Spinel and HDLC-lite."""
