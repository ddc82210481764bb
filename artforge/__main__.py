"""`python -m artforge` works like `artforge` (torchrun needs it)."""

from artforge.cli import main

if __name__ == "__main__":
    main()
