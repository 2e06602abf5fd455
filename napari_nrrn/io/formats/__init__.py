"""One module per stack format, each with ``NAME``, ``SUFFIXES``, ``recognises(path)`` and
``inspect(path, channel)`` (see ``base``). ``FORMATS`` is the order ``io.stack`` tries them in: containers
named by their suffix first, then folders and files recognised by their names."""

from napari_nrrn.io.formats import dat, omezarr, tiff

FORMATS = (omezarr, dat, tiff)
