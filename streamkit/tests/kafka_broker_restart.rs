//! A single-node real cluster killed (`kill -9`, as a crash) and started again mid-stream:
//! the application rides out the outage — its clients reconnect, failed commits wait for the
//! broker — and no record is lost. The embedded broker lives in the test's process, so it
//! cannot crash and come back.

mod common;

use common::kafka;

#[test]
fn a_broker_killed_and_restarted_mid_stream_loses_no_record() {
    common::init_logs();
    let cluster = kafka::Cluster::start(1);
    let outcome = common::broker_faults::run_through_fault(&cluster.bootstrap, &[1], 6000, || {
        cluster.kill(1);
        cluster.restart(1);
    });
    // At-least-once: records processed after the last commit before the crash may come out
    // again; the run's count is in the test output.
    eprintln!("after a broker restart: {outcome:?}");
}
