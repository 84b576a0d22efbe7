"""Sans-I/O decoders: field bytes in, samples (or a typed error) out."""

from edge_agent.decode.base import DecodeError, Decoder, DecodeStats, Sample

__all__ = ["DecodeError", "DecodeStats", "Decoder", "Sample"]
