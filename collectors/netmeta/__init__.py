"""The packet-metadata sensor (`soc collector netmeta`): flows, DNS, HTTP and TLS from a live
interface or a pcap, as ECS records on `soc.raw`."""
