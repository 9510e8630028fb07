//! What a descriptor of a live process is, for the notes of I/O leaves: a TCP socket's local
//! and peer addresses, a listening socket's address, a Unix socket's path.
//!
//! First by asking the socket itself: a copy of the descriptor (`pidfd_getfd`, allowed to a
//! process that may ptrace the target; the reader's own descriptors as they are), then
//! `getsockname`/`getpeername`/`SO_ACCEPTCONN`, and the copy closed. Where that is refused
//! (an older kernel, no ptrace rights), from the kernel's tables: `/proc/PID/net/tcp`, `tcp6`
//! and `unix`, by the socket's inode (the `socket:[INODE]` link of `/proc/PID/fd/N`), read once
//! per read of a target. Those tables are slow to read on a host with a large TCP hash (the
//! kernel walks every bucket: 7 ms each here), which is why they come second.
//!
//! Either way it happens after the target has resumed: a socket opened or closed since the
//! stop may be missing, and is then named by its descriptor only.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
    /// A pidfd of the process, opened on the first socket asked (one per read, not per
    /// socket); `None` inside where it cannot be had. Closed on drop.
    pidfd: OnceCell<Option<OwnedFd>>,
}

impl Sockets {
    /// What descriptor `fd` of process `pid` is, for an I/O leaf's wait: a TCP socket's
    /// addresses (a listener's own), a Unix socket's path, or only the descriptor when it is no
    /// socket the tables know. Its text: `fd 9: 127.0.0.1:3000 to 127.0.0.1:51234`.
    pub fn describe(&self, pid: i32, fd: i32) -> tasktrace_model::Socket {
        let socket = self
            .ask_the_socket(pid, fd)
            .or_else(|| self.in_tables(pid, fd));
        let mut out = tasktrace_model::Socket {
            fd,
            ..Default::default()
        };
        match socket {
            Some(Socket::Tcp { local, peer }) => {
                out.local = Some(local.to_string());
                out.peer = peer.map(|p| p.to_string());
            }
            Some(Socket::Unix { path }) if !path.is_empty() => out.unix = Some(path),
            _ => {}
        }
        out
    }

    /// The socket `fd` of `pid` as the kernel's tables list it.
    fn in_tables(&self, pid: i32, fd: i32) -> Option<Socket> {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok();
        let inode = link
            .as_ref()
            .and_then(|l| l.to_str())
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        let table = self.by_inode.get_or_init(|| read_tables(pid));
        table.get(&inode?).cloned()
    }

    /// The socket `fd` of `pid`, asked directly (see the module doc); `None` when the
    /// descriptor cannot be had or is no TCP/Unix socket.
    fn ask_the_socket(&self, pid: i32, fd: i32) -> Option<Socket> {
        if pid == std::process::id() as i32 {
            return socket_of(fd);
        }
        let pidfd = self.pidfd.get_or_init(|| {
            // SAFETY: pidfd_open takes a pid and flags and touches none of our memory; the
            // descriptor it returns is owned by the `OwnedFd` alone.
            unsafe {
                let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
                (pidfd >= 0).then(|| OwnedFd::from_raw_fd(pidfd))
            }
        });
        // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags, and touches none
        // of our memory; the copy it returns is owned by the `OwnedFd` alone.
        let copy = unsafe {
            let copy =
                libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_ref()?.as_raw_fd(), fd, 0) as i32;
            if copy < 0 {
                return None;
            }
            OwnedFd::from_raw_fd(copy)
        };
        socket_of(copy.as_raw_fd())
    }
}

/// What the socket behind our descriptor `fd` is.
fn socket_of(fd: i32) -> Option<Socket> {
    let int_opt = |opt: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes to `v`, an int.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    let domain = int_opt(libc::SO_DOMAIN)?;
    let name = |peer: bool| -> Option<libc::sockaddr_storage> {
        // SAFETY: sockaddr_storage is plain data (all-zero is valid); the call writes at most
        // `len` bytes to it.
        unsafe {
            let mut sa: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let p = (&mut sa as *mut libc::sockaddr_storage).cast();
            let r = if peer {
                libc::getpeername(fd, p, &mut len)
            } else {
                libc::getsockname(fd, p, &mut len)
            };
            (r == 0).then_some(sa)
        }
    };
    match domain {
        libc::AF_INET | libc::AF_INET6 => {
            let local = inet_addr(&name(false)?)?;
            let listening = int_opt(libc::SO_ACCEPTCONN) == Some(1);
            let peer = if listening {
                None
            } else {
                name(true).and_then(|sa| inet_addr(&sa))
            };
            Some(Socket::Tcp { local, peer })
        }
        libc::AF_UNIX => {
            let sa = name(false)?;
            // SAFETY: an AF_UNIX address is a sockaddr_un, which fits in sockaddr_storage.
            let un: &libc::sockaddr_un = unsafe { &*(&sa as *const libc::sockaddr_storage).cast() };
            let bytes: Vec<u8> = un
                .sun_path
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            Some(Socket::Unix {
                path: String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
        _ => None,
    }
}

/// An IPv4 or IPv6 socket address (IPv4-mapped IPv6 shown as IPv4).
fn inet_addr(sa: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match sa.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in, which fits in sockaddr_storage.
            let v4: &libc::sockaddr_in = unsafe { &*(sa as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6, which fits in sockaddr_storage.
            let v6: &libc::sockaddr_in6 = unsafe { &*(sa as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let ip = match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            };
            Some(SocketAddr::new(ip, u16::from_be(v6.sin6_port)))
        }
        _ => None,
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
            s.describe(pid, listener.as_raw_fd()).to_string(),
            format!("fd {}: listening on {addr}", listener.as_raw_fd())
        );
        assert_eq!(
            s.describe(pid, server.as_raw_fd()).to_string(),
            format!("fd {}: {addr} to {peer}", server.as_raw_fd())
        );
        // The same from the kernel's tables (the path taken without pidfd_getfd).
        assert_eq!(
            s.in_tables(pid, server.as_raw_fd()),
            Some(Socket::Tcp {
                local: addr,
                peer: Some(peer)
            })
        );
        drop(client);
        assert_eq!(s.describe(pid, 0).to_string(), "fd 0");
    }

    #[test]
    fn a_socket_of_another_process_is_described() {
        // A child holding a listening socket and a connection (inherited descriptors).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (_server, _) = listener.accept().unwrap();
        use std::os::fd::AsRawFd;
        let (lfd, cfd) = (listener.as_raw_fd(), client.as_raw_fd());
        for fd in [lfd, cfd] {
            // SAFETY: clears FD_CLOEXEC on our own descriptors so that the child keeps them.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let s = Sockets::default();
        let asked = s.ask_the_socket(pid, lfd);
        let got = s.describe(pid, lfd).to_string();
        let got_client = s.describe(pid, cfd).to_string();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got, format!("fd {lfd}: listening on {addr}"));
        // Asked directly (pidfd_getfd), where the kernel allows it; else from the tables.
        if let Some(asked) = asked {
            assert_eq!(
                asked,
                Socket::Tcp {
                    local: addr,
                    peer: None
                }
            );
        } else {
            eprintln!("pidfd_getfd refused here: described from /proc/PID/net");
        }
        assert!(
            got_client.starts_with(&format!("fd {cfd}: 127.0.0.1:")),
            "{got_client}"
        );
        assert!(got_client.ends_with(&format!(" to {addr}")), "{got_client}");
    }
}
