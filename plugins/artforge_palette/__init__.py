"""artforge's palette plugin: one-hot palette codec, pixel-art conversion, AE/VAE family."""
