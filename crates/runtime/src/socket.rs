//! Binding a shard's UDP sockets and the node's ICE-TCP listeners.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Bind the first port from `ports` that is free, with the given kernel buffer sizes.
pub(crate) fn bind_from(
    ip: IpAddr,
    ports: &mut impl Iterator<Item = u16>,
    recv_buffer: usize,
    send_buffer: usize,
) -> Result<UdpSocket, String> {
    let mut last_error = String::from("the port range is exhausted");
    for port in ports.by_ref() {
        let addr = SocketAddr::new(ip, port);
        match bind(addr, recv_buffer, send_buffer) {
            Ok(socket) => return Ok(socket),
            Err(e) => last_error = format!("{addr}: {e}"),
        }
    }
    Err(last_error)
}

/// Bind `preferred` if it is free, else the first free port from `ports` (the second address
/// family's socket of a shard asks for the first one's port, so one port serves both).
pub(crate) fn bind_preferring(
    ip: IpAddr,
    preferred: Option<u16>,
    ports: &mut impl Iterator<Item = u16>,
    recv_buffer: usize,
    send_buffer: usize,
) -> Result<UdpSocket, String> {
    if let Some(port) = preferred.filter(|p| *p != 0) {
        if let Ok(socket) = bind(SocketAddr::new(ip, port), recv_buffer, send_buffer) {
            return Ok(socket);
        }
    }
    bind_from(ip, ports, recv_buffer, send_buffer)
}

/// The ICE-TCP listener on `addr`. An IPv6 listener takes IPv6 only, so that an IPv4 listener
/// on the same port can exist beside it.
pub(crate) fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn bind(addr: SocketAddr, recv_buffer: usize, send_buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // One socket per family: the IPv4 socket of the shard may hold the same port.
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(recv_buffer);
    let _ = socket.set_send_buffer_size(send_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
