//! Where the load goes: the replicas that answer, found again every couple of seconds, used round-robin.
//!
//! Only loopback and private addresses (a compose network) are ever targeted, whatever a name resolves to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::webapp::PortRange;

/// A `host:port` whose name may resolve to several replicas (a compose service on a bridge network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A name or an IP address (IPv6 in brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{s:?}: {port:?} is not a port number"))?;
        let valid = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
        if host.is_empty() || !host.chars().all(valid) {
            return Err(format!("{s:?}: {host:?} is not a host name or address"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How replicas are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Every port of the range on 127.0.0.1 that accepts a connection (host networking).
    Ports(PortRange),
    /// Every address these names resolve to (bridge networks).
    Hosts(Vec<HostPort>),
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ports(range) => write!(f, "127.0.0.1:{range}"),
            Self::Hosts(hosts) => {
                for (i, host) in hosts.iter().enumerate() {
                    write!(f, "{}{host}", if i == 0 { "" } else { "," })?;
                }
                Ok(())
            }
        }
    }
}

/// Whether load may be sent to `ip`: loopback, or a private network (RFC 1918, IPv6 unique local).
pub fn allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => allowed(IpAddr::V4(v4)),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

/// Finds the replicas now. The second list holds what was left out and why, to print.
pub async fn discover(spec: &TargetSpec) -> (Vec<SocketAddr>, Vec<String>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    match spec {
        TargetSpec::Ports(range) => {
            let mut probes = JoinSet::new();
            for port in range.ports() {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                probes.spawn(async move {
                    let probe =
                        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr));
                    matches!(probe.await, Ok(Ok(_))).then_some(addr)
                });
            }
            while let Some(probe) = probes.join_next().await {
                found.extend(probe.ok().flatten());
            }
        }
        TargetSpec::Hosts(hosts) => {
            for target in hosts {
                let host = target.host.trim_start_matches('[').trim_end_matches(']');
                match tokio::net::lookup_host((host, target.port)).await {
                    Ok(addrs) => {
                        for addr in addrs {
                            if allowed(addr.ip()) {
                                found.push(addr);
                            } else {
                                notes.push(format!(
                                    "{target} resolves to {addr}, which is neither loopback nor private: not used"
                                ));
                            }
                        }
                    }
                    Err(e) => notes.push(format!("{target}: {e}")),
                }
            }
        }
    }
    found.sort();
    found.dedup();
    (found, notes)
}

/// The replicas in use, handed out round-robin.
#[derive(Debug, Default)]
pub struct Targets {
    addrs: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Targets {
    /// Replaces the replicas with a fresh discovery.
    pub fn replace(&self, addrs: Vec<SocketAddr>) {
        *self.addrs.lock().unwrap_or_else(PoisonError::into_inner) = addrs;
    }

    /// Drops a replica that refused a connection, until the next discovery finds it again.
    pub fn mark_down(&self, addr: SocketAddr) {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&a| a != addr);
    }

    /// The next replica, or `None` if none answers.
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.addrs.lock().unwrap_or_else(PoisonError::into_inner);
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        Some(addrs[i])
    }

    /// How many replicas are in use.
    pub fn len(&self) -> usize {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no replica is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_parse() {
        let hp: HostPort = "webapp:8080".parse().unwrap();
        assert_eq!(
            hp,
            HostPort {
                host: "webapp".into(),
                port: 8080
            }
        );
        assert_eq!(hp.to_string(), "webapp:8080");
        assert_eq!("[::1]:80".parse::<HostPort>().unwrap().host, "[::1]");
        for (input, why) in [
            ("webapp", "\"webapp\": expected HOST:PORT"),
            ("webapp:0", "\"webapp:0\": \"0\" is not a port number"),
            (":80", "\":80\": \"\" is not a host name or address"),
            (
                "a b:80",
                "\"a b:80\": \"a b\" is not a host name or address",
            ),
        ] {
            assert_eq!(input.parse::<HostPort>(), Err(why.to_string()), "{input}");
        }
    }

    #[test]
    fn only_loopback_and_private_addresses_are_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.18.0.5",
            "192.168.1.1",
            "::1",
            "fd00::5",
            "::ffff:172.18.0.2",
        ] {
            assert!(allowed(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "0.0.0.0",
            "2001:db8::1",
            "::ffff:1.1.1.1",
            "169.254.1.1",
        ] {
            assert!(!allowed(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn replicas_are_used_round_robin_and_dropped_when_down() {
        let targets = Targets::default();
        assert_eq!(targets.pick(), None);
        let [a, b, c]: [SocketAddr; 3] =
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].map(|s| s.parse().unwrap());
        targets.replace(vec![a, b, c]);
        let picks: Vec<_> = (0..6).map(|_| targets.pick().unwrap()).collect();
        assert_eq!(picks, [a, b, c, a, b, c]);
        targets.mark_down(b);
        assert_eq!(targets.len(), 2);
        let picks: Vec<_> = (0..4).filter_map(|_| targets.pick()).collect();
        assert!(picks.iter().all(|&p| p != b) && picks.contains(&a) && picks.contains(&c));
    }

    #[tokio::test]
    async fn a_port_range_finds_the_ports_that_accept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let range = PortRange::new(port, port).unwrap();
        let (found, notes) = discover(&TargetSpec::Ports(range)).await;
        assert_eq!(found, [listener.local_addr().unwrap()]);
        assert!(notes.is_empty());
        drop(listener);
        let (found, _) = discover(&TargetSpec::Ports(range)).await;
        assert!(found.is_empty());
    }

    #[tokio::test]
    async fn names_resolve_to_allowed_addresses_only() {
        let spec = TargetSpec::Hosts(vec![
            "localhost:8080".parse().unwrap(),
            "8.8.8.8:53".parse().unwrap(),
        ]);
        let (found, notes) = discover(&spec).await;
        assert!(
            !found.is_empty() && found.iter().all(|a| a.ip().is_loopback()),
            "{found:?}"
        );
        assert_eq!(
            notes,
            ["8.8.8.8:53 resolves to 8.8.8.8:53, which is neither loopback nor private: not used"]
        );
    }
}
