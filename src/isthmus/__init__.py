"""Isthmus: one OpenStack API in front of many clouds (sites), each one availability zone.

Layers (see DESIGN.md): api/ writes intent and work in one transaction; engine/
reconcilers move bindings towards intent through sites/ drivers; store/ holds it all.
"""

__version__ = "0.1.0"
