"""Symbol-API SSD network builders.  Importing this package registers the project's
MultiBox operators (``mx.sym.MultiBoxPrior`` / ``MultiBoxTarget`` / ``MultiBoxDetection``)."""
from . import operators

operators.load()
