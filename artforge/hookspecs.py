"""The whole plugin API on one page.

A plugin is a module (or object) with functions decorated by ``artforge.hookspecs.hookimpl`` whose names
match the specs below. Each hook receives a ``register`` callback (or the CLI group) and calls it
once per thing it provides. Hook modules should import heavy libraries (torch) inside the hook
function, never at module level, so ``artforge --help`` stays fast.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("artforge")
hookimpl = pluggy.HookimplMarker("artforge")


@hookspec
def register_codecs(register):
    """Register codec classes: ``register(codec_class)``.

    ``codec_class`` subclasses :class:`artforge.codecs.Codec`; its ``name`` is the spec family
    (``hsv`` serves ``hsv544``, ``hsv:433`` ...). ``register(name, "package.module:Class")``
    registers lazily.
    """


@hookspec
def register_models(register):
    """Register model classes: ``register(name, "package.module:Class")`` (lazy, preferred:
    listing plugins then never imports torch) or ``register(model_class)``.

    The class subclasses :class:`artforge.models.ArtModel`; its ``name`` is what
    ``artforge train --plugin NAME`` takes.
    """


@hookspec
def register_renderers(register):
    """Register differentiable renderers: ``register(name, factory)``.

    ``factory(codec)`` returns a torch module mapping soft or hard tokens to RGB(A) pixels.
    """


@hookspec
def register_datasets(register):
    """Register built-in data sets: ``register(name, path, description="", codec=None)``.

    ``path`` is any source ``artforge data build`` reads (a folder, ``.npz``, ``.jsonl``);
    users name it as ``builtin:NAME``. ``codec`` is the spec used when none is given.
    """


@hookspec
def register_commands(cli):
    """Add click commands to the ``artforge`` command group: ``@cli.command()``."""
