"""artforge: a plugin-based toolbox for discrete art forms that neural models learn to make."""

__version__ = "0.1.0"
