//! The whole program on its one-command defaults plus `--cassandra` (the node from
//! `STREAMKIT_TEST_CASSANDRA`; the test fails without one): users polled from the local API
//! reach `spark_streams.created_users`-shaped rows (keyspace and table created by the sink),
//! read back with the CQL driver, each equal to the cleaned user in the application's store.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use random_users::model::CreatedUser;
use random_users::topology::USERS_STORE;
use random_users::{Args, start};
use scylla::client::session_builder::SessionBuilder;

#[test]
fn polled_users_land_in_cassandra_as_the_cleaned_rows() {
    let node = common::cassandra();
    let keyspace = format!("ru_e2e_{}", std::process::id());
    let table = format!("{keyspace}.created_users");
    let running = start(&Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        poll_interval_ms: 200,
        results_per_poll: 20,
        cassandra: vec![node.clone()],
        cassandra_table: table.clone(),
        ..Args::defaults()
    })
    .expect("the program starts");
    let sink = running
        .sink
        .clone()
        .expect("the sink is on with --cassandra");
    running
        .wait_until(Duration::from_secs(180), |_| {
            sink.progress.rows_written() >= 100
        })
        .unwrap();
    // The rows now, then the application's users: every row was cleaned by then.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows: BTreeMap<String, Vec<Option<String>>> = rt.block_on(async {
        let session = SessionBuilder::new().known_node(&node).build().await.unwrap();
        let result = session
            .query_unpaged(
                format!(
                    "SELECT id, first_name, last_name, gender, address, post_code, email, username, \
                     dob, registered_date, phone, picture FROM {table}"
                ),
                &[],
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        type Row = (
            scylla::value::CqlValue,
            Option<String>, Option<String>, Option<String>, Option<String>, Option<String>,
            Option<String>, Option<String>, Option<String>, Option<String>, Option<String>,
            Option<String>,
        );
        result
            .rows::<Row>()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let id = match r.0 {
                    scylla::value::CqlValue::Uuid(u) => u.to_string(),
                    other => panic!("id is not a uuid: {other:?}"),
                };
                (id, vec![r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11])
            })
            .collect()
    });
    // The sink reads the cleaned topic on its own: the application's store of users may be a
    // moment behind the rows it wrote, but reaches every one of them.
    let users_now = |r: &random_users::Running| -> BTreeMap<String, CreatedUser> {
        r.app
            .store::<String, CreatedUser>(USERS_STORE)
            .and_then(|s| s.all())
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    let _ = running.wait_until(Duration::from_secs(60), |r| {
        let users = users_now(r);
        rows.keys().all(|id| users.contains_key(id))
    });
    let users = users_now(&running);
    running.shutdown().unwrap();
    assert!(rows.len() >= 100, "{} rows", rows.len());
    for (id, cols) in &rows {
        let u = users
            .get(id)
            .unwrap_or_else(|| panic!("row {id} is no user of the application"));
        let want: Vec<Option<String>> = random_users::sink::row(u)
            .into_iter()
            .map(|c| match c {
                streamkit::connect::cassandra::Cell::Text(t) => Some(t),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(cols, &want, "row {id}");
    }
    // Every row is a cleaned user: a UUID key, a gender, an address with the country last.
    for (id, cols) in &rows {
        assert!(random_users::model::is_uuid(id));
        let gender = cols[2].as_deref().unwrap();
        assert!(gender == "male" || gender == "female", "{gender}");
        assert!(
            cols[3].as_deref().unwrap().matches(", ").count() >= 3,
            "{:?}",
            cols[3]
        );
        assert!(cols[5].as_deref().unwrap().contains('@'));
        assert!(
            cols[10]
                .as_deref()
                .unwrap()
                .starts_with("https://randomuser.me/api/portraits/med/")
        );
    }
}
