//! A three-node real cluster loses the leader of every input and output partition
//! mid-stream: the followers take over (replication factor 3, `acks=all`, two in-sync
//! replicas) and the application, its internal topics replicated three times, loses no
//! record. The embedded broker has one node, so it cannot move a leader.

mod common;

use common::kafka;

#[test]
fn killing_the_partition_leader_mid_stream_loses_no_record() {
    common::init_logs();
    let cluster = kafka::Cluster::start(3);
    // Node 1 leads every partition of the input and output topics; it is killed for good.
    let outcome =
        common::broker_faults::run_through_fault(&cluster.bootstrap, &[1, 2, 3], 6000, || {
            cluster.kill(1)
        });
    eprintln!("after a leader change: {outcome:?}");
}
