//! Runtime settings: how many shards, which UDP ports, which addresses.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Number of shard threads (one UDP socket each).
    pub shards: usize,
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// A second address of the other family to bind too (dual stack): each shard then has one
    /// socket per family, on the same port when it is free.
    pub bind_ip6: Option<IpAddr>,
    /// Ports to try, in order; each shard takes the next one that binds.
    pub ports: Vec<u16>,
    /// Address advertised in ICE candidates (NAT 1:1); defaults to `bind_ip`.
    pub public_ip: Option<IpAddr>,
    /// Address advertised for the `bind_ip6` sockets; defaults to `bind_ip6`.
    pub public_ip6: Option<IpAddr>,
    /// More addresses advertised as host candidates (a private address for clients on the same
    /// LAN beside a public one), each on the sockets of its family.
    pub extra_ips: Vec<IpAddr>,
    /// ICE-TCP: the TCP port (on every bind address) that clients whose UDP is blocked connect
    /// to; `None` = no ICE-TCP, `Some(0)` = any free port (tests).
    pub tcp_port: Option<u16>,
    /// Bounded command queue per shard.
    pub command_queue: usize,
    /// SO_RCVBUF requested for each shard socket. Kept small on purpose: when a shard is
    /// saturated, datagrams wait here, and a large buffer turns overload into seconds of
    /// latency instead of loss (measured: 4 MiB gave 4-6 s of delay in docs/benchmarks.md).
    pub recv_buffer: usize,
    /// SO_SNDBUF requested for each shard socket: large, because one keyframe fanned out to many
    /// subscribers is a burst of hundreds of datagrams.
    pub send_buffer: usize,
    /// Send runs of same-size datagrams to one destination in one `sendmsg` (UDP GSO, Linux);
    /// off, or where the kernel refuses it, every datagram is its own `sendto`.
    pub udp_gso: bool,
    pub keyframe_interval: Duration,
    pub connect_timeout: Duration,
    pub disconnect_grace: Duration,
    /// Joins beyond this many members of a room are refused; 0 = unlimited.
    pub max_participants_per_room: usize,
    /// Tracks one participant may publish.
    pub max_tracks_per_participant: usize,
    /// m-lines one session may have.
    pub max_mlines_per_session: usize,
    /// Remote ICE candidates kept per participant.
    pub max_candidates_per_session: usize,
    /// Estimate each subscriber's bandwidth (TWCC) for the allocator.
    pub bandwidth_estimation: bool,
    /// The most forwarded to one subscriber (bits per second); `None`: what its link carries.
    pub max_subscriber_bitrate: Option<u64>,
    /// Tell publishers to stop encoding video layers nobody receives.
    pub dynacast: bool,
}

impl RuntimeConfig {
    /// Loopback defaults: works on one machine with no configuration.
    pub fn localhost(shards: usize) -> Self {
        RuntimeConfig {
            shards,
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            bind_ip6: None,
            ports: (50000..=50100).collect(),
            public_ip: None,
            public_ip6: None,
            extra_ips: Vec::new(),
            tcp_port: None,
            command_queue: 1024,
            recv_buffer: 512 * 1024,
            send_buffer: 4 * 1024 * 1024,
            udp_gso: true,
            keyframe_interval: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(30),
            disconnect_grace: Duration::from_secs(10),
            max_participants_per_room: 0,
            max_tracks_per_participant: switchboard_protocol::MAX_TRACKS_PER_PARTICIPANT,
            max_mlines_per_session: switchboard_protocol::MAX_MLINES_PER_SESSION,
            max_candidates_per_session: switchboard_protocol::MAX_CANDIDATES_PER_SESSION,
            bandwidth_estimation: true,
            max_subscriber_bitrate: None,
            dynacast: true,
        }
    }

    /// What clients are told to send to.
    pub fn advertised_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.bind_ip)
    }

    /// Every bound address with the addresses advertised for it (first: its public or bind
    /// address, then the extra ones of its family).
    pub fn binds(&self) -> Vec<(IpAddr, Vec<IpAddr>)> {
        let mut binds = vec![(self.bind_ip, vec![self.advertised_ip()])];
        if let Some(ip6) = self.bind_ip6 {
            binds.push((ip6, vec![self.public_ip6.unwrap_or(ip6)]));
        }
        for (bind, advertised) in &mut binds {
            let family = bind.is_ipv4();
            for ip in &self.extra_ips {
                if ip.is_ipv4() == family && !advertised.contains(ip) {
                    advertised.push(*ip);
                }
            }
        }
        binds
    }
}

impl RuntimeConfig {
    /// What an operator should hear about the advertised addresses before clients fail to
    /// connect: an advertised address that is not one of this machine's (`is_local`) although no
    /// public address was configured for it, or a loopback address advertised by a node that
    /// binds a real interface. A configured public address is taken as a 1:1 NAT and not checked.
    pub fn address_warnings(&self, is_local: impl Fn(IpAddr) -> bool) -> Vec<String> {
        let mut warnings = Vec::new();
        for (bind, advertised) in self.binds() {
            let public = if bind == self.bind_ip {
                self.public_ip
            } else {
                self.public_ip6
            };
            for ip in advertised {
                if ip.is_loopback() && !bind.is_loopback() {
                    warnings.push(format!(
                        "advertised address {ip} is a loopback address although the media \
                         sockets bind {bind}: only this machine can reach them"
                    ));
                } else if Some(ip) != public && !is_local(ip) {
                    warnings.push(format!(
                        "advertised address {ip} is not an address of this machine and no public \
                         address was configured for it: clients will send media where nobody \
                         listens (behind a 1:1 NAT, set public_ip / public_ip6)"
                    ));
                }
            }
        }
        warnings
    }
}

/// Can this machine bind `ip`? (Then it is one of its addresses.)
pub fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// A port list that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortListError(pub String);

impl std::fmt::Display for PortListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for PortListError {}

/// Parse `50000-50100`, `50000,50002,50004`, or a mix such as `50000-50003,50010`.
/// Port 0 means "any free port" (tests use it).
pub fn parse_port_list(text: &str) -> Result<Vec<u16>, PortListError> {
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            PortListError(format!(
                "{part:?} is not a port or a range like 50000-50100"
            ))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(PortListError(format!("range {part:?} is reversed")));
                }
                ports.extend(lo..=hi);
            }
            None => ports.push(part.parse().map_err(|_| bad())?),
        }
    }
    if ports.is_empty() {
        return Err(PortListError("the UDP port list is empty".into()));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_that_are_not_ours_are_warned_about() {
        let mut config = RuntimeConfig::localhost(1);
        config.extra_ips = vec![IpAddr::from([192, 0, 2, 9])];
        let local = |ip: IpAddr| ip.is_loopback();
        let warnings = config.address_warnings(local);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("192.0.2.9"), "{warnings:?}");
        // A configured public address is a 1:1 NAT: no warning.
        config.extra_ips.clear();
        config.bind_ip = IpAddr::from([10, 0, 0, 4]);
        config.public_ip = Some(IpAddr::from([203, 0, 113, 4]));
        assert!(config.address_warnings(|_| true).is_empty());
        // Loopback advertised for a real interface.
        config.public_ip = Some(IpAddr::from([127, 0, 0, 1]));
        let warnings = config.address_warnings(|_| true);
        assert!(warnings[0].contains("loopback"), "{warnings:?}");
        // The default (loopback everywhere) is fine.
        assert!(RuntimeConfig::localhost(1)
            .address_warnings(is_local_address)
            .is_empty());
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_port_list("5-7"), Ok(vec![5, 6, 7]));
        assert_eq!(parse_port_list("5, 9,10-11"), Ok(vec![5, 9, 10, 11]));
        assert_eq!(parse_port_list("0"), Ok(vec![0]));
        assert!(parse_port_list("").is_err());
        assert!(parse_port_list("9-5").is_err());
        assert!(parse_port_list("70000").is_err());
        assert!(parse_port_list("a-b").is_err());
    }
}
