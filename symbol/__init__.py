"""Symbol-API SSD network builders.

Importing this package is cheap: it neither builds nor loads the project's MultiBox operator
library.  ``symbol.operators.load()`` registers ``mx.sym.MultiBoxPrior`` / ``MultiBoxTarget``
/ ``MultiBoxDetection`` (building the library first if needed; later calls return at once);
the functions that build or load graphs (``symbol_factory``, ``model_io``) call it themselves.
"""
