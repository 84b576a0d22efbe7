"""What edge and cloud share about a gateway: the wire contract, identity, provisioning, config bundles."""
