"""The Neutron extensions Isthmus serves (GET /v2.0/extensions lists them, and Tempest
and the clients decide from it what to use): each one listed here is really served,
by the module named beside it."""

from __future__ import annotations

# (alias, name, description, updated) of every extension Isthmus really serves
EXTENSIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "availability_zone",
        "Availability Zone",
        "The availability zone extension.",
        "2015-01-01T10:00:00-00:00",
    ),
    (
        "network_availability_zone",
        "Network Availability Zone",
        "Availability zone support for network.",
        "2015-01-01T10:00:00-00:00",
    ),
    (
        "router_availability_zone",
        "Router Availability Zone",
        "Availability zone support for router.",
        "2015-01-01T10:00:00-00:00",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
        "2014-02-03T10:00:00-00:00",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
        "2013-01-14T10:00:00-00:00",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "Extension of the router abstraction for specifying whether SNAT should occur on"
        " the external gateway",
        "2013-03-28T10:00:00-00:00",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "Add port_details attribute to Floating IP resource",
        "2018-04-09T10:00:00-00:00",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
        "2015-03-25T10:00:00-00:00",
    ),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
        "2017-07-12T00:00:00-00:00",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
        "2016-09-09T09:09:09-09:09",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
        "2012-09-07T10:00:00-00:00",
    ),
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
        "2012-07-29T10:00:00-00:00",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
        "2017-02-10T10:00:00-00:00",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access"
        " to external networks via a NAT gateway.",
        "2012-07-20T10:00:00-00:00",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
        "2012-10-05T10:00:00-00:00",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
        "2016-02-10T10:00:00-00:00",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
        "2016-04-11T10:00:00-00:00",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, router, network, port,"
        " security_group, floatingip, subnetpool, address_scope",
        "Enables to set tag on resources with standard attribute.",
        "2017-01-01T00:00:00-00:00",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron"
        " standard attributes.",
        "2016-09-12T10:00:00-00:00",
    ),
    (
        "subnet-external-network",
        "Subnet External Network",
        "Informs if the subnet belongs to an external network (such subnets are visible to"
        " every project, as their networks are).",
        "2022-11-22T10:00:00-00:00",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "Extra routes configuration for L3 router",  # api/network/l3.py
        "2013-02-01T10:00:00-00:00",
    ),
    (
        "extraroute-atomic",
        "Atomically add/remove extra routes",
        "Edit extra routes of a router on server side by atomically adding/removing extra routes",
        "2019-07-10T00:00:00-00:00",
    ),
    (
        "dvr",
        "Distributed Virtual Router",
        "Enables configuration of Distributed Virtual Routers.",  # admin only (l3.py)
        "2014-06-1T10:00:00-00:00",
    ),
    (
        "l3-ha",
        "HA Router extension",
        "Adds HA capability to routers.",  # admin only (l3.py)
        "2014-04-26T00:00:00-00:00",
    ),
    (
        "port-security",
        "Port Security",
        "Provides port security",  # api/network/ports.py, networks.py
        "2012-07-23T10:00:00-00:00",
    ),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",  # api/network/ports.py
        "2013-07-23T10:00:00-00:00",
    ),
    (
        "subnet_allocation",
        "Subnet Allocation",
        "Enables allocation of subnets from a subnet pool",  # api/network/pools.py
        "2015-03-30T10:00:00-00:00",
    ),
    (
        "subnetpool",
        "Neutron L3 Subnet Pool",
        "Layer 3 subnet pool abstraction",
        "2012-01-01T10:00:00-00:00",
    ),
    (
        "default-subnetpools",
        "Default Subnetpools",
        "Provides ability to mark and use a subnetpool as the default.",
        "2016-02-18T18:00:00-00:00",
    ),
    (
        "address-scope",
        "Address scope",
        "Address scopes extension.",  # api/network/pools.py
        "2015-07-26T10:00:00-00:00",
    ),
)
