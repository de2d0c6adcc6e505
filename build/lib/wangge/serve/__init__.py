"""The HTTP service: ``create_app`` in :mod:`wangge.serve.app`, ``run`` in :mod:`.server`."""
