"""loopline: machine learning in production on a streaming log.

The loop, in the order data flows (see the folders of this package):
log -> contracts -> connectors -> features -> models -> serving -> outcomes
-> experiments -> monitor.
"""

__version__ = "0.1.0"

from loopline.app import App, AppError, load_app

__all__ = ["App", "AppError", "__version__", "load_app"]
