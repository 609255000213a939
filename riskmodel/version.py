"""The library's version, in one place (torch-free, imports nothing).

Everything inside the package that needs the version imports it from here, never from the package
root, so that no module depends on ``riskmodel/__init__.py`` (the top of the import graph).

>>> from riskmodel.version import __version__
>>> isinstance(__version__, str)
True
"""

__version__ = "0.1.0"
