"""artforge's ASCII plugin: character-grid codec, glyph renderer, image->ASCII, ascii-vae."""
