"""One module per stack format, each with ``NAME``, ``SUFFIXES``, ``recognises(path)`` and
``inspect(path, channel)`` (see ``base``). ``FORMATS`` is the order ``io.stack`` tries them in: containers
named by their suffix first, then folders and files recognised by their names."""

from napari_nrrn.io.formats import dat, hdf5, mrc, n5, omezarr, tiff

FORMATS = (omezarr, n5, hdf5, mrc, dat, tiff)
