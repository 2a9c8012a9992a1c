"""The service layer: one write path per resource kind, below the API and above
the engine and the store.

An API handler parses a request and renders the answer; everything between that
needs the store is here: checks against stored state (a zone, a fixed IP, a port
in use), placement, IPAM, quotas, writing the intent and enqueueing its work, all
in the caller's transaction (the handler commits and wakes the engine). Tests and
benches write intent through the same functions.

- `servers`: server create (the checked `BootRequest`, `boot`, `add_server`) and delete;
- `server_actions`: Nova's state of a server and the actions it allows (update,
  start/stop/reboot, metadata, volume attach/detach);
- `server_lifecycle`: the other server actions (pause, suspend, lock, rebuild,
  resize with confirm/revert, shelve/unshelve, createImage, force delete/restore)
  and server tags; `server_interfaces`: interface attach and detach;
- `volumes`: volume and snapshot create (empty, from a snapshot, a volume or an
  image), extend, delete, update and metadata; `volume_attach`: Cinder's attach
  actions (reserve, attach, detach, ...); `boot_volumes`: a server's root volume
  (boot from volume);
- `ports`: Neutron port create, update and delete;
- `floating_ips`: floating IP create and association;
- `routers`: routers, their gateways and interfaces;
- `networks`: networks and subnets (zone hints, VNIs, overlaps, in-use checks);
- `security_groups`: security groups and rules;
- `flavors`, `volume_types`, `keypairs`, `images`: the catalogs and key pairs;
- `image_members`, `image_imports`: Glance's image sharing and interoperable import
  (each site a store).
- `server_groups`: Nova's server groups, their members and quotas, and the placement
  (model/placement.Spread) a server's group and same_host/different_host hints ask;
- `sites`: a site's scheduling switch as Nova's os-services reach it.

Where a check that needs the store sits between checks of the body (Neutron's
and Nova's order of errors), the API calls the intent check at that point and
the write after it; each check is still written once, here.

Functions take a `Caller` (who asks: project, user, admin or not) rather than the
API's request context, so nothing here imports api/.
"""

from __future__ import annotations

from typing import Protocol


class Caller(Protocol):
    """Who asks for a write (api/context.RequestContext is one)."""

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...

    def visible_project(self) -> str | None:
        """The project a single-resource write is limited to (None: any, admins)."""
        ...
