"""The `openstack` site driver: an OpenStack cloud region, or another Isthmus in
site mode (`isthmus up --site-mode`), driven through openstacksdk.

- driver.py   OpenStackDriver (config keys, connections, check, dispatch per kind)
- common.py   how site objects carry their Isthmus id; lookups shared by kinds
- network.py  network, subnet, security group, port (Neutron)
- compute.py  server, flavor choice, key pair (Nova)
- storage.py  volume, snapshot (Cinder), image (Glance)
- errors.py   SDK / keystoneauth exceptions -> SiteUnavailable / TemporaryError /
              PermanentError
"""

from isthmus.sites.openstack.driver import OpenStackDriver

__all__ = ["OpenStackDriver"]
