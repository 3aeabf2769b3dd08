"""``esrgan serve``: a local web app for upscaling and network interpolation (optional extra ``esrgan[serve]``).

``create_app(ServeConfig(...))`` gives the ASGI application; ``esrgan.commands.serve`` runs it with uvicorn.
Starlette, uvicorn and python-multipart are imported only here, so the rest of the package never needs them.
"""

from esrgan.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
