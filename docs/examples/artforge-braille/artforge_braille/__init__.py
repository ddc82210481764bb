"""artforge-braille: a third-party artforge plugin (an example to copy)."""
