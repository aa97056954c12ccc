//! `bind` addresses, for listeners and the metrics endpoint: the forms
//! hbmqtt users write (`host:port`, `'[v6]:port'`, `:port`, `port`,
//! `hostname:port`) parsed into one socket address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::diagnostics::{io_reason, one_line};

/// Parses a `bind` value: `host:port`, `[v6]:port`, `:port` or `port`
/// (both meaning 0.0.0.0), with `host` an IP address or a name to resolve
/// (the first address wins). The error is the reason, for a message.
pub(super) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty; expected `host:port`".to_owned());
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), parse_port(s)?));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing `]` after the IPv6 address")?;
        let port = after.strip_prefix(':').ok_or("missing port; expected `[address]:port`")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{}` is not an IPv6 address", one_line(host)));
        }
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing port; expected `host:port`")?;
        if host.contains(':') {
            return Err(if s.parse::<Ipv6Addr>().is_ok() {
                "missing port; write IPv6 addresses as `[address]:port`".to_owned()
            } else {
                "IPv6 addresses must be in brackets, e.g. `[::1]:1883`".to_owned()
            });
        }
        (host, port)
    };
    let port = parse_port(port)?;
    if host.is_empty() {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host `{}`: {}", one_line(host), io_reason(&e)))?;
    addrs.next().ok_or_else(|| format!("host `{}` has no address", one_line(host)))
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port; expected `host:port`".to_owned());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not a port number", one_line(text)));
    }
    text.parse::<u16>().map_err(|_| "port out of range".to_owned())
}
