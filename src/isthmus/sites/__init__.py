"""Site drivers: adapters that turn Isthmus specs into objects in one cloud.

`base.py` holds the contract; engine/registry.py builds a driver for a site row
(it reads the store, which drivers never do).
"""
