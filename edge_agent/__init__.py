"""The gridwatch edge agent: field bytes in, canonical readings and alerts out to the uplink."""

__version__ = "0.1.0"
