"""Shell completion (click's own mechanism): commands, options, and artforge's names."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ARTFORGE, subprocess_env


def complete(line: str) -> list[str]:
    """What bash completion offers for the last word of LINE, as `eval "$(_ARTFORGE_COMPLETE=bash_source
    artforge)"` would ask for it."""
    words = line.split(" ")
    env = subprocess_env(COMP_WORDS=line, COMP_CWORD=str(len(words) - 1), _ARTFORGE_COMPLETE="bash_complete")
    out = subprocess.run(ARTFORGE, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and not out.stderr, out.stderr
    return [item.split(",", 1)[1] for item in out.stdout.splitlines()]


@pytest.mark.parametrize("line, expected", [
    ("artforge ru", ["runs"]),
    ("artforge train --plugin sigil-d", ["sigil-dae", "sigil-dcgan"]),
    ("artforge models hsv", ["hsv-transformer"]),
    ("artforge convert x.png -c pal", ["palette"]),
    ("artforge train --data builtin:s", ["builtin:sigils64", "builtin:s"]),  # the last: files and folders
    # every command that reads a SOURCE takes builtin:NAME, so each completes it
    ("artforge data build builtin:t", ["builtin:tiles32", "builtin:t"]),
    ("artforge palette extract builtin:t", ["builtin:tiles32", "builtin:t"]),
])
def test_completion_offers_artforge_names(line, expected):
    assert complete(line) == expected


def test_completion_script_is_printed_for_bash():
    env = subprocess_env(_ARTFORGE_COMPLETE="bash_source")
    out = subprocess.run(ARTFORGE, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "_artforge_completion" in out.stdout
