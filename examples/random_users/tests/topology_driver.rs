//! The topology through the `TopologyTestDriver` (no broker for the topology; the Avro serdes
//! talk to a real embedded schema registry): the cleaning into the Spark job's columns, the
//! malformed and invalid records, the counts per country, gender and age band against a
//! recount of the raw JSON, a user polled twice counted once, and the model learning.

mod common;

use std::collections::BTreeMap;

use random_users::learn::{self, Entry, Evaluation};
use random_users::model::{CreatedUser, Rejected, age_band};
use random_users::topology::{
    self, BY_AGE_BAND, BY_COUNTRY_GENDER, CREATED_TOPIC, DEAD_LETTER_TOPIC, RAW_TOPIC,
    REJECTED_TOPIC, TopologyConfig, USERS_STORE, USERS_TOPIC,
};
use serde_json::Value;
use streamkit::prelude::*;
use streamkit::serde::avro::RegistryClient;

fn driver(registry: &RegistryClient) -> TopologyTestDriver {
    TopologyTestDriver::new(topology::topology(&TopologyConfig::new(registry)).unwrap()).unwrap()
}

fn pipe_users(d: &TopologyTestDriver, users: &[Value]) {
    let input = d.input_topic(RAW_TOPIC, Serdes::string(), Serdes::json::<Value>());
    for (i, u) in users.iter().enumerate() {
        let key = u["login"]["uuid"].as_str().unwrap_or_default().to_string();
        input.pipe_at(key, u.clone(), 1_000 + i as i64).unwrap();
    }
}

#[test]
fn a_user_is_cleaned_into_the_spark_jobs_columns_through_avro() {
    let (_broker, _registry, client) = common::registry();
    let d = driver(&client);
    pipe_users(&d, &[common::maria()]);
    // The polled user went to the Avro topic, as the registry's schema describes it.
    let avro = d
        .output_topic(
            USERS_TOPIC,
            Serdes::string(),
            topology::users_serde(&client),
        )
        .read_values();
    assert_eq!(avro.len(), 1);
    assert_eq!(
        avro[0].location.postcode, "41001",
        "a numeric postcode becomes text"
    );
    let created = d
        .output_topic(
            CREATED_TOPIC,
            Serdes::string(),
            topology::created_serde(&client),
        )
        .read_key_values();
    let id = "9f1c2b3a-4d5e-4f60-8a7b-1c2d3e4f5a6b".to_string();
    assert_eq!(
        created,
        vec![(
            id.clone(),
            CreatedUser {
                id,
                first_name: "María".into(),
                last_name: "García López".into(),
                gender: "female".into(),
                address: "12 Calle Mayor, Sevilla, Andalucía, Spain".into(),
                post_code: "41001".into(),
                email: "maria.garcia@example.com".into(),
                username: "happybear12".into(),
                dob: "1990-05-17T10:00:00.000Z".into(),
                registered_date: "2012-03-04T05:06:07.000Z".into(),
                phone: "955-123-456".into(),
                picture: "https://randomuser.me/api/portraits/med/women/1.jpg".into(),
                country: "Spain".into(),
                age: 36,
            }
        )]
    );
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_and_invalid_users_are_rejected_with_a_reason() {
    let (_broker, _registry, client) = common::registry();
    let d = driver(&client);
    let raw = d.input_topic(RAW_TOPIC, Serdes::string(), Serdes::string());
    raw.pipe_raw(Some(b"k1"), Some(b"not json at all"), 1)
        .unwrap();
    raw.pipe_raw(
        Some(b"k2"),
        Some(br#"{"gender": "male", "name": {"first": "Bob"}}"#),
        2,
    )
    .unwrap();
    let mut bad_gender = common::maria();
    bad_gender["gender"] = "unknown".into();
    let mut bad_uuid = common::maria();
    bad_uuid["login"]["uuid"] = "1234".into();
    let mut bad_email = common::maria();
    bad_email["email"] = "nobody".into();
    pipe_users(&d, &[bad_gender, bad_uuid, bad_email, common::maria()]);

    let dead = d.output_topic(DEAD_LETTER_TOPIC, Serdes::string(), Serdes::string());
    let dead: Vec<Record<String, String>> = dead.read_records();
    assert_eq!(dead.len(), 2, "both malformed records are kept: {dead:?}");
    assert_eq!(dead[0].value, "not json at all", "the original bytes");
    assert_eq!(dead[0].key, "k1");
    assert_eq!(dead[1].key, "k2");

    let rejected = d
        .output_topic(REJECTED_TOPIC, Serdes::string(), Serdes::json::<Rejected>())
        .read_values();
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(rejected.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("gender"), "{reasons:?}");
    assert!(reasons[1].contains("login.uuid"), "{reasons:?}");
    assert!(reasons[2].contains("email"), "{reasons:?}");

    let created = d
        .output_topic(
            CREATED_TOPIC,
            Serdes::string(),
            topology::created_serde(&client),
        )
        .read_values();
    assert_eq!(created.len(), 1, "only the valid user is written");
}

#[test]
fn counts_per_country_gender_and_age_band_match_a_recount_and_a_repeat_counts_once() {
    let (_broker, _registry, client) = common::registry();
    let d = driver(&client);
    let users = common::users("counts", 300);
    pipe_users(&d, &users);
    // Polled again (a replay, or the API repeating someone): no change.
    pipe_users(&d, &users[..40]);

    let mut want_cg: BTreeMap<String, i64> = BTreeMap::new();
    let mut want_age: BTreeMap<String, i64> = BTreeMap::new();
    for u in &users {
        let key = format!(
            "{}|{}",
            u["location"]["country"].as_str().unwrap(),
            u["gender"].as_str().unwrap()
        );
        *want_cg.entry(key).or_default() += 1;
        let age = u["dob"]["age"].as_i64().unwrap() as i32;
        *want_age.entry(age_band(age).to_string()).or_default() += 1;
    }
    let got = |store: &str| -> BTreeMap<String, i64> {
        d.key_value_store::<String, i64>(store)
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .collect()
    };
    assert_eq!(got(BY_COUNTRY_GENDER), want_cg);
    assert_eq!(got(BY_AGE_BAND), want_age);
    assert!(
        want_cg.len() > 10,
        "the API spreads users over countries: {want_cg:?}"
    );
    assert!(want_age.len() >= 4, "and ages: {want_age:?}");
    let users_store = d
        .key_value_store::<String, CreatedUser>(USERS_STORE)
        .unwrap();
    assert_eq!(users_store.all().unwrap().len(), 300);
}

#[test]
fn the_model_learns_gender_from_first_name_and_country_on_held_out_users() {
    let (_broker, _registry, client) = common::registry();
    let d = driver(&client);
    let users = common::users("model", 800);
    pipe_users(&d, &users);
    let evals = d
        .output_topic(
            learn::EVAL_TOPIC,
            Serdes::string(),
            Serdes::json::<Evaluation>(),
        )
        .read_values();
    let held_out = users
        .iter()
        .filter(|u| learn::is_held_out(u["login"]["uuid"].as_str().unwrap()))
        .count();
    assert_eq!(evals.len(), held_out, "one evaluation per held-out user");
    let last = evals.last().unwrap();
    assert_eq!(last.seen as usize, held_out);
    // Early on the model guesses; after hundreds of users it knows the names.
    let early = &last.curve[0];
    assert!(last.accuracy() > 0.85, "accuracy {}", last.accuracy());
    assert!(
        last.recent_accuracy() > early.2,
        "learning: {:?} then {}",
        early,
        last.recent_accuracy()
    );

    // Trained on every user not held out, and on nobody held out.
    let model = d
        .key_value_store::<String, Entry>(learn::MODEL_STORE)
        .unwrap();
    let get = |k: &str| model.get(&k.to_string()).unwrap();
    let p = learn::predict("", "", learn::counts_in(get)).unwrap();
    assert_eq!(p.trained_on as usize, users.len() - held_out);
    // Polled again: not trained again.
    pipe_users(&d, &users[..100]);
    let p2 = learn::predict("", "", learn::counts_in(get)).unwrap();
    assert_eq!(p2.trained_on, p.trained_on);
}
