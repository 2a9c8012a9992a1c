"""The store: SQL tables (intent, bindings, work queue, sites, identity), the
database handle and the repository functions everything else uses."""
