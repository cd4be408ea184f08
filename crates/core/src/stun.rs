//! Just enough STUN parsing to route a new path: is this datagram a STUN message, and which of
//! our ICE username fragments does its USERNAME attribute name?
//!
//! A binding request from a client carries `USERNAME = <server ufrag>:<client ufrag>` (RFC 8445
//! 7.2.2). We read only that; authentication (MESSAGE-INTEGRITY) is left to the participant's
//! `Rtc::accepts`, which we call before trusting the new address.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LEN: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;

/// True when the first bytes look like a STUN message (RFC 7983 demultiplexing + magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] < 2 && datagram[4..8] == MAGIC_COOKIE
}

/// The local (server-side) ufrag named in a STUN message's USERNAME, if there is a well-formed one.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let end = HEADER_LEN.checked_add(declared)?;
    let attrs = datagram.get(HEADER_LEN..end)?;
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let kind = u16::from_be_bytes([attrs[at], attrs[at + 1]]);
        let len = usize::from(u16::from_be_bytes([attrs[at + 2], attrs[at + 3]]));
        let value = attrs.get(at + 4..at + 4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        // Attributes are padded to a multiple of four bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A binding request with a USERNAME attribute and a dummy trailing attribute.
    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        attrs.extend_from_slice(&[0x80, 0x29, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn finds_local_ufrag() {
        let msg = binding_request("srvufrag:cli");
        assert!(is_stun(&msg));
        assert_eq!(local_ufrag(&msg), Some("srvufrag"));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let msg = binding_request("abc:def");
        for cut in 0..msg.len() {
            // Every truncation either parses to the same answer or to nothing; never panics.
            let got = local_ufrag(&msg[..cut]);
            assert!(got.is_none() || got == Some("abc"));
        }
        assert_eq!(local_ufrag(&binding_request("nocolon")), None);
        assert_eq!(local_ufrag(&binding_request(":x")), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        let mut lying = binding_request("abc:def");
        lying[2] = 0xff; // declared length longer than the datagram
        assert_eq!(local_ufrag(&lying), None);
    }
}
