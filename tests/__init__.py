"""Isthmus test suite (a package, so helpers are imported as ``tests.fixtures.*``: a top-level
``fixtures`` would shadow the PyPI package of that name that OpenStack libraries use)."""
