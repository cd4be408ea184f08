//! Binding a shard's UDP socket.

use std::net::{IpAddr, SocketAddr, UdpSocket};

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

fn bind(addr: SocketAddr, recv_buffer: usize, send_buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(recv_buffer);
    let _ = socket.set_send_buffer_size(send_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
