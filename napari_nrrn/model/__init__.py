"""Layer 2: the network (nrrn), its loss (loss) and checkpoints (checkpoint). torch, no Qt."""
