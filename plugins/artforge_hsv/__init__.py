"""artforge's HSV plugin: the ``hsvHSV`` packed-pixel codec and the pixel transformer."""
