"""Layer 3: training and tiled inference as generators of progress events (torch, no Qt)."""
