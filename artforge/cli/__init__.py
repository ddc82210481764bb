"""The ``artforge`` command group. Heavy imports (numpy, torch, h5py) happen inside commands."""

from __future__ import annotations

import sys

import click

from artforge import __version__
from artforge.errors import ArtforgeError, env_flag

ABORTED = 130  # the exit status after Ctrl-C: 128 + SIGINT, as a shell reports it (train's too)


class ArtforgeGroup(click.Group):
    """A click group that adds plugin commands on first use and turns errors into one line."""

    #: the plugin manager (and its generation) whose commands are in the group; None: none added yet
    _plugins_from: tuple[object, int] | None = None
    #: name -> command of the commands plugins added, taken out again when plugins change
    _plugin_commands: dict[str, click.Command] | None = None
    #: commands of artforge itself, which plugin commands may not replace
    core_commands: frozenset[str] = frozenset()

    def _add_plugin_commands(self) -> None:
        """Add the plugins' commands, again whenever the plugins changed since (a plugin registered by
        hand or a reset manager, as in a plugin's own tests): stale commands are taken out first."""
        from artforge.plugins import get_plugin_manager

        pm = get_plugin_manager()
        state = (pm, pm.generation)
        if self._plugins_from == state:
            return
        for name, cmd in (self._plugin_commands or {}).items():
            if self.commands.get(name) is cmd:
                del self.commands[name]
        before = dict(self.commands)
        self._plugins_from = state
        pm.add_commands(self)
        self._plugin_commands = {n: c for n, c in self.commands.items() if before.get(n) is not c}

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.core_commands:
            self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            from artforge.signals import mark_done

            mark_done()
            return result
        except ArtforgeError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:  # click would say "Aborted!" and exit 1; a shell reports Ctrl-C as 130
            click.echo("\nAborted!", err=True)
            raise click.exceptions.Exit(ABORTED) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit,
                BrokenPipeError):  # output piped into `head`: click exits quietly on a closed pipe
            raise
        except MemoryError:
            raise click.ClickException(
                "out of memory; try fewer or smaller inputs (or a smaller --batch-size, where the command has one)"
            ) from None
        except Exception as exc:  # a bug, not bad input: one line unless asked for the traceback
            if env_flag("ARTFORGE_DEBUG"):
                raise
            text = str(exc).strip()
            if "Traceback (most recent call last)" in text:  # re-raised from a worker (DataLoader, pool)
                last = text.splitlines()[-1]
                name, _, message = last.partition(": ")
                if name.rsplit(".", 1)[-1] in ("ArtforgeError", "BadInput"):
                    raise click.ClickException(message) from None
                text = last
            text = text.splitlines()[0] if text else ""
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {text} (set ARTFORGE_DEBUG=1 for the traceback)"
            ) from None


@click.group(cls=ArtforgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="artforge")
def cli() -> None:
    """artforge: make, learn and export discrete art forms.

    Codecs turn images into tokens and back, models learn the tokens, and plugins bring new art
    forms. Start with `artforge codecs`, `artforge plugins` and `artforge models`.
    """


def _register_core_commands() -> None:
    from artforge.cli import codec_cmds, data_cmds, plugin_cmds, run_cmds, train_cmds

    for module in (plugin_cmds, codec_cmds, data_cmds, train_cmds, run_cmds):
        module.register(cli)
    cli.core_commands = frozenset(cli.commands)


_register_core_commands()


#: names of the standard output as a file: `decode t.npz -o /dev/stdout > x.png`
STDOUT_NAMES = ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _writes_to_stdout(args: list[str]) -> bool:
    """Whether an argument names stdout as an output file (`-o /dev/stdout`, `--png=/dev/stdout`,
    `-o/dev/stdout`): the command's report lines must then not go there too."""
    return any(a in STDOUT_NAMES or a.partition("=")[2] in STDOUT_NAMES
               or (a[:1] == "-" and a[1:2] != "-" and a[2:] in STDOUT_NAMES) for a in args)


def main() -> None:
    import contextlib

    from artforge.signals import Terminated, ignore_stops, stop_cleanly

    stop_cleanly()
    # a picture or token file written to /dev/stdout: what the command says goes to stderr, or its
    # "decoded 6 ..." line lands inside the file
    reports = contextlib.redirect_stdout(sys.stderr) if _writes_to_stdout(sys.argv[1:]) else contextlib.nullcontext()
    try:
        with reports:
            cli.main(prog_name="artforge")
    except Terminated:
        click.echo("Terminated (SIGTERM).", err=True)
        raise
    except SystemExit as exc:
        if exc.code in (0, None):  # done and reported: a signal during shutdown must not undo exit 0
            ignore_stops()
        raise
    except ArtforgeError as exc:  # raised outside a command (e.g. strict plugin loading)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
