"""`python -m artforge` works like `artforge` (torchrun needs it); both start here."""

import sys


def main() -> None:
    """The ``artforge`` command. Ctrl-C and SIGTERM are handled from the first moment: importing the
    command group (click, every command module) takes a tenth of a second, and a Ctrl-C in it
    printed a traceback."""
    from artforge.signals import Terminated, stop_cleanly  # the standard library only: quick

    stop_cleanly()
    try:
        from artforge.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")  # as a command says it once it runs
        sys.exit(130)  # artforge.cli.ABORTED, not imported: the interrupt may have come during that import
    except Terminated:
        sys.stderr.write("Terminated (SIGTERM).\n")
        raise
    cli_main()


if __name__ == "__main__":
    main()
