//! Instruction-count probe (not part of the suite): one room of 10 publishers in the
//! simulation for 3 s of virtual time, run under callgrind to compare the shard's cost per
//! forwarded packet between two commits (or, with `PROBE_BWE=1`, with bandwidth estimation on
//! against off).
mod sim;

#[test]
#[ignore]
fn perf_probe_room10() {
    let mut sim = sim::Sim::new();
    // PROBE_BWE=1: the same room with bandwidth estimation on (`media.bandwidth_estimation`).
    if std::env::var_os("PROBE_BWE").is_some() {
        sim.estimate_bandwidth();
    }
    for i in 0..10 {
        sim.join("r", &format!("p{i}"), true);
    }
    sim.run(std::time::Duration::from_secs(3));
    let got: usize = (0..10)
        .map(|i| {
            sim.client(&format!("p{i}"))
                .received
                .values()
                .map(|r| r.packets.len())
                .sum::<usize>()
        })
        .sum();
    println!("received {got}");
}
