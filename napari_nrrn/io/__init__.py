"""Layer 1: lazy stack reading and streaming writing (no torch, no Qt)."""
