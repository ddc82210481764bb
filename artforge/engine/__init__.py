"""One engine to train, sample, evaluate and export every artforge model."""
