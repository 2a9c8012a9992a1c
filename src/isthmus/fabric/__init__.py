"""The fabric: everything between sites.

- `dataplane.EmbeddedFabric`: the embedded sites' kernel data plane (network
  namespaces, bridges, VXLAN, veths), one per Isthmus data dir.
- `frr`: one zebra + bgpd per site gateway (BGP EVPN, `-N <namespace>` pathspace).
- `security`: security groups rendered as nftables rulesets.
- `capability`: whether this machine can run the data plane at all, and why not.

VNI allocation lives in the store (`store/segments.py`), since it is intent.
"""
