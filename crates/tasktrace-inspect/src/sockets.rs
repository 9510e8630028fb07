//! What a descriptor of a live process is, for the notes of I/O leaves: a TCP socket's local
//! and peer addresses (`/proc/PID/net/tcp`, `tcp6`: the socket's inode, from the
//! `socket:[INODE]` link of `/proc/PID/fd/N`), a listening socket's address, a Unix socket's
//! path (`/proc/PID/net/unix`).
//!
//! The tables are read once per read of a target, on the first descriptor asked for, after
//! the target has resumed: a socket opened or closed since the stop may be missing, and is
//! then named by its descriptor only.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A socket, as the kernel's tables list it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Socket {
    /// A TCP socket; `peer` is `None` for a listening one.
    Tcp {
        local: SocketAddr,
        peer: Option<SocketAddr>,
    },
    /// A Unix socket, bound to `path` (empty when unnamed).
    Unix { path: String },
}

/// The sockets of one live process, read when first needed.
#[derive(Default)]
pub struct Sockets {
    by_inode: OnceCell<HashMap<u64, Socket>>,
}

impl Sockets {
    /// The description of descriptor `fd` of process `pid` for a leaf's note:
    /// `fd 9: 127.0.0.1:3000 to 127.0.0.1:51234`, `fd 7: listening on 0.0.0.0:3000`,
    /// `fd 5: unix /run/app.sock`, or `fd 5` when it is no socket the tables know.
    pub fn describe(&self, pid: i32, fd: i32) -> String {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok();
        let inode = link
            .as_ref()
            .and_then(|l| l.to_str())
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        let table = self.by_inode.get_or_init(|| read_tables(pid));
        match inode.and_then(|i| table.get(&i)) {
            Some(Socket::Tcp {
                local,
                peer: Some(peer),
            }) => format!("fd {fd}: {local} to {peer}"),
            Some(Socket::Tcp { local, peer: None }) => format!("fd {fd}: listening on {local}"),
            Some(Socket::Unix { path }) if !path.is_empty() => format!("fd {fd}: unix {path}"),
            _ => format!("fd {fd}"),
        }
    }
}

fn read_tables(pid: i32) -> HashMap<u64, Socket> {
    let mut out = HashMap::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            out.extend(text.lines().skip(1).filter_map(tcp_line));
        }
    }
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        out.extend(text.lines().skip(1).filter_map(unix_line));
    }
    out
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`, addresses in hex.
fn tcp_line(line: &str) -> Option<(u64, Socket)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let local = hex_addr(f.get(1)?)?;
    let peer = hex_addr(f.get(2)?)?;
    let listening = *f.get(3)? == "0A";
    let inode = f.get(9)?.parse().ok()?;
    Some((
        inode,
        Socket::Tcp {
            local,
            peer: (!listening).then_some(peer),
        },
    ))
}

/// `Num RefCount Protocol Flags Type St Inode [Path]`.
fn unix_line(line: &str) -> Option<(u64, Socket)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let inode = f.get(6)?.parse().ok()?;
    let path = f.get(7).copied().unwrap_or("").to_string();
    Some((inode, Socket::Unix { path }))
}

/// `0100007F:0BB8` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word in host
/// (little-endian) order, the port in big-endian hex.
fn hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_le_bytes(),
        )
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_table_lines_parse() {
        let l = "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            tcp_line(l),
            Some((
                4242,
                Socket::Tcp {
                    local: "127.0.0.1:3000".parse().unwrap(),
                    peer: None
                }
            ))
        );
        let l6 = "   1: 0000000000000000FFFF00000100007F:0BB8 0000000000000000FFFF00000100007F:C822 01 00000000:00000000 00:00000000 00000000  0        0 77 1";
        assert_eq!(
            tcp_line(l6),
            Some((
                77,
                Socket::Tcp {
                    local: "127.0.0.1:3000".parse().unwrap(),
                    peer: Some("127.0.0.1:51234".parse().unwrap())
                }
            ))
        );
        assert_eq!(
            hex_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(tcp_line("garbage"), None);
    }

    #[test]
    fn a_socket_of_this_process_is_described() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, peer) = listener.accept().unwrap();
        use std::os::fd::AsRawFd;
        let pid = std::process::id() as i32;
        let s = Sockets::default();
        assert_eq!(
            s.describe(pid, listener.as_raw_fd()),
            format!("fd {}: listening on {addr}", listener.as_raw_fd())
        );
        assert_eq!(
            s.describe(pid, server.as_raw_fd()),
            format!("fd {}: {addr} to {peer}", server.as_raw_fd())
        );
        drop(client);
        assert_eq!(s.describe(pid, 0), "fd 0");
    }
}
