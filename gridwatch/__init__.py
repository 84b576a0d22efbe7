"""The `gridwatch` command: the composition root that wires edge, cloud and simulators together."""
