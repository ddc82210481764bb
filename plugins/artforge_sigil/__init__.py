"""artforge's sigil plugin: binary "magic symbol" bitmaps (the DCGAN comes in a later issue)."""
