"""Hook implementations: keep this module light; import the codec only when asked for it."""

from artforge.hookspecs import hookimpl


@hookimpl
def register_codecs(register):
    from artforge_braille.codec import BrailleCodec

    register(BrailleCodec)
