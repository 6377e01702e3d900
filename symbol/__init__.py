"""Symbol-API SSD network builders.  Importing this package registers the project's
MultiBox operators (``mx.sym.MultiBoxPrior`` / ``MultiBoxTarget`` / ``MultiBoxDetection``)."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from . import operators

operators.load()
