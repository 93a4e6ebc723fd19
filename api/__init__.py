"""The web layer: a thin FastAPI app over the domain packages (``create_app``)."""
