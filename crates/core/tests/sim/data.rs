//! Data channels of simulated clients.

use str0m::Input;

use super::Sim;

impl Sim {
    /// Write `bytes` on the client's open channel `label` (false: not open or not accepted).
    pub fn send_data(&mut self, name: &str, label: &str, binary: bool, bytes: &[u8]) -> bool {
        let now = self.now;
        let i = self.index(name);
        let c = &mut self.clients[i];
        let Some(id) = c.channels.get(label).copied() else {
            return false;
        };
        let sent = c
            .rtc
            .channel(id)
            .is_some_and(|mut ch| ch.write(binary, bytes).unwrap_or(false));
        let _ = c.rtc.handle_input(Input::Timeout(now));
        self.drain_client(i);
        sent
    }
}
