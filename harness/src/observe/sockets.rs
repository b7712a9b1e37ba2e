//! The kernel's view of a process's TCP sockets, from /proc, so the harness
//! can tell which Redis connections belong to which service (as `ss -p` does).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

/// A TCP socket: local and remote address, kernel state (0x0A is LISTEN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

pub const TCP_LISTEN: u8 = 0x0A;
pub const TCP_ESTABLISHED: u8 = 0x01;

/// Parse /proc/net/tcp (IPv4 only: the stack runs on 127.0.0.0/8).
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = parse_addr(f.get(1)?)?;
            let remote = parse_addr(f.get(2)?)?;
            let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let inode = f.get(9)?.parse().ok()?;
            Some(TcpEntry {
                local,
                remote,
                state,
                inode,
            })
        })
        .collect()
}

fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address in host byte order of a network-order u32.
    Some(SocketAddr::from((Ipv4Addr::from(u32::from_be(ip)), port)))
}

pub fn all_tcp() -> Vec<TcpEntry> {
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| parse_proc_net_tcp(&t))
        .unwrap_or_default()
}

/// The TCP table of the network namespace a process is in.
pub fn tcp_of_namespace_of(pid: u32) -> Vec<TcpEntry> {
    std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .map(|t| parse_proc_net_tcp(&t))
        .unwrap_or_default()
}

/// Socket inodes held open by a process.
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Established connections of these processes to `remote_port` on loopback,
/// as the local addresses the server sees them from.
pub fn connections_to(pids: &[u32], remote_port: u16) -> Vec<SocketAddr> {
    let inodes: HashSet<u64> = pids.iter().flat_map(|p| socket_inodes(*p)).collect();
    // Each process's own network namespace (a container has its own): /proc/<pid>/net/tcp.
    let mut seen = HashSet::new();
    pids.iter()
        .flat_map(|p| tcp_of_namespace_of(*p))
        .filter(|e| seen.insert(e.inode))
        .filter(|e| e.state == TCP_ESTABLISHED && e.remote.port() == remote_port && inodes.contains(&e.inode))
        .map(|e| e.local)
        .collect()
}

/// Every TCP connection (not a listener) with a server side on one of
/// `ports`, named (client, server), whichever side the kernel still lists:
/// the closing side keeps its entry in TIME_WAIT for a minute, so a
/// connection opened and closed between two looks is still seen.
pub fn connections_to_ports(ports: &[u16]) -> HashSet<(SocketAddr, SocketAddr)> {
    all_tcp()
        .into_iter()
        .filter(|e| e.state != TCP_LISTEN)
        .filter_map(|e| {
            if ports.contains(&e.local.port()) {
                Some((e.remote, e.local))
            } else if ports.contains(&e.remote.port()) {
                Some((e.local, e.remote))
            } else {
                None
            }
        })
        .collect()
}

/// Whether anything listens on this loopback port.
pub fn listening_on(port: u16) -> bool {
    all_tcp().iter().any(|e| e.state == TCP_LISTEN && e.local.port() == port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let entries = parse_proc_net_tcp(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(entries[0].state, TCP_LISTEN);
        assert_eq!(entries[0].inode, 12345);
    }

    #[test]
    fn sees_its_own_listener_and_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening_on(port));
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mine = connections_to(&[std::process::id()], port);
        assert_eq!(mine, vec![client.local_addr().unwrap()]);
        drop(listener);
        drop(client);
    }
}

#[cfg(test)]
mod connection_count_tests {
    use super::*;
    use std::io::{Read, Write};

    /// Real sockets on loopback: connections opened and closed before the
    /// second look are still counted (TIME_WAIT), one per connection.
    #[test]
    fn new_connections_are_counted_from_the_kernel() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let before = connections_to_ports(&[port]);
        let server = std::thread::spawn(move || {
            for _ in 0..5 {
                let (mut s, _) = listener.accept().expect("accept");
                let mut b = [0u8; 1];
                let _ = s.read(&mut b);
                let _ = s.write_all(b"x");
            }
        });
        for _ in 0..5 {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            c.write_all(b"x").expect("write");
            let mut b = [0u8; 1];
            let _ = c.read(&mut b);
        }
        server.join().expect("server");
        let after = connections_to_ports(&[port]);
        assert_eq!(after.difference(&before).count(), 5, "{after:?}");
    }
}
