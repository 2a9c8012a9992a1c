"""ML2 mechanism driver for Isthmus's test site: binds every port at once, with no
agent (the site has no data plane; Nova's fake driver only needs a bound port).

Loaded by neutron-server through the entry point in fakebind-0.1.dist-info when
this directory is on PYTHONPATH (scripts/openstack-site/site.py does that).
"""

from neutron_lib import constants as const
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class FakeBindMechanismDriver(api.MechanismDriver):
    """Binds the first segment offered, as an OVS port, status ACTIVE."""

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status=const.PORT_STATUS_ACTIVE,
            )
            return
