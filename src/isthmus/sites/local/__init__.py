"""The embedded `local` site: a small real cloud kept apart from the Isthmus store.

Its state lives in its own directory (`state.db`, image copies), so a crash of
Isthmus leaves it as a real cloud would be left. This issue gives it its control
plane; the fabric gives it a data plane (namespaces, bridges, VXLAN, FRR).
"""

from isthmus.sites.local.driver import LocalDriver

__all__ = ["LocalDriver"]
