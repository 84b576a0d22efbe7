"""Devices that speak the real wire formats over pseudo-terminals and MQTT, with fault injection."""
