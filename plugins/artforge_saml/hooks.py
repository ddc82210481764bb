"""Hook implementations of the saml plugin (torch loads only when a renderer is built)."""

from __future__ import annotations

from artforge.hookspecs import hookimpl


@hookimpl
def register_codecs(register):
    from artforge_saml.codec import SamlCodec

    register(SamlCodec)


@hookimpl
def register_renderers(register):
    register("saml", _renderer)


def _renderer(codec):
    from artforge_saml.codec import HEIGHT, WIDTH
    from artforge_saml.renderer import SamlRenderer

    return SamlRenderer(WIDTH, HEIGHT, symbol_dir=codec.symbols)


@hookimpl
def register_models(register):
    register("saml-net", "artforge_saml.net:SamlNet")  # lazy: torch loads on use
