"""The engine: a work queue in the database, reconcilers per resource kind that
move bindings towards intent through site drivers, retries with backoff, and
site health checks. Nothing here runs in an API request path (work is requested
through store/work.py in the transaction that changes intent).
"""
