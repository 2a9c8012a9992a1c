"""The HTTP API: one module per OpenStack service (identity, compute, network,
volume, image) plus the Isthmus admin API, mounted by `app.create_app`."""
