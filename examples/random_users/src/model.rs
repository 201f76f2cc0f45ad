//! The records: a user as randomuser.me returns it ([`RandomUser`], Avro on the `random-users`
//! topic), the cleaned row the Spark job wrote to Cassandra ([`CreatedUser`]), and the
//! cleaning between them.

use apache_avro::AvroSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// A user as `GET /api/` returns it in `results[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct RandomUser {
    /// `male` or `female`.
    pub gender: String,
    /// Title, first and last name.
    pub name: Name,
    /// Where the user lives.
    pub location: Location,
    /// E-mail address.
    pub email: String,
    /// Account.
    pub login: Login,
    /// Date of birth and age.
    pub dob: Dated,
    /// Registration date and years since.
    pub registered: Dated,
    /// Phone number.
    pub phone: String,
    /// Mobile number.
    pub cell: String,
    /// National identifier (its value is `null` for some nationalities).
    pub id: NationalId,
    /// Portrait URLs.
    pub picture: Picture,
    /// Nationality, e.g. `FR`.
    pub nat: String,
}

/// `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Name {
    /// `Mr`, `Ms`, `Mrs`, `Miss`, `Monsieur`, …
    pub title: String,
    /// First name.
    pub first: String,
    /// Last name.
    pub last: String,
}

/// `location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Location {
    /// Number and street name.
    pub street: Street,
    /// City.
    pub city: String,
    /// State or region.
    pub state: String,
    /// Country.
    pub country: String,
    /// Postcode: a number for some countries, text for others in the real API; text here.
    #[serde(deserialize_with = "string_or_number")]
    pub postcode: String,
    /// Latitude and longitude, as text.
    pub coordinates: Coordinates,
    /// UTC offset and description.
    pub timezone: Timezone,
}

/// `location.street`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Street {
    /// House number.
    pub number: i64,
    /// Street name.
    pub name: String,
}

/// `location.coordinates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Coordinates {
    /// Latitude, e.g. `"-69.8246"`.
    pub latitude: String,
    /// Longitude.
    pub longitude: String,
}

/// `location.timezone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Timezone {
    /// E.g. `"+9:30"`.
    pub offset: String,
    /// E.g. `"Adelaide, Darwin"`.
    pub description: String,
}

/// `login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Login {
    /// The user's UUID: the row key in Cassandra.
    pub uuid: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Salt.
    pub salt: String,
    /// MD5 of salted password (hex).
    pub md5: String,
    /// SHA-1 (hex).
    pub sha1: String,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// `dob` and `registered`: an ISO-8601 instant and the whole years since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Dated {
    /// E.g. `"1993-07-20T09:44:18.674Z"`.
    pub date: String,
    /// Whole years from `date` to the API's now.
    pub age: i32,
}

/// `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct NationalId {
    /// E.g. `"SSN"`, `"INSEE"`; may be empty.
    pub name: String,
    /// The identifier, `null` when the nationality has none.
    pub value: Option<String>,
}

/// `picture`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct Picture {
    /// 128×128 portrait.
    pub large: String,
    /// 72×72 portrait.
    pub medium: String,
    /// 48×48 portrait.
    pub thumbnail: String,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::I(i) => i.to_string(),
        Either::F(f) => f.to_string(),
    })
}

/// A cleaned user: the columns of `spark_streams.created_users` (the Spark job's), and the
/// country and age the live aggregates and the model use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
pub struct CreatedUser {
    /// `login.uuid`, lower case: a user polled twice is one row.
    pub id: String,
    /// First name, trimmed.
    pub first_name: String,
    /// Last name, trimmed.
    pub last_name: String,
    /// `male` or `female`.
    pub gender: String,
    /// `number street, city, state, country`.
    pub address: String,
    /// Postcode, as text.
    pub post_code: String,
    /// E-mail, lower case.
    pub email: String,
    /// `login.username`.
    pub username: String,
    /// `dob.date`.
    pub dob: String,
    /// `registered.date`.
    pub registered_date: String,
    /// Phone number.
    pub phone: String,
    /// The medium portrait's URL.
    pub picture: String,
    /// Country (not a Cassandra column: for the aggregates).
    pub country: String,
    /// Age in years (not a Cassandra column: for the aggregates).
    pub age: i32,
}

/// Why a user was not cleaned: it goes to the rejected topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The record key (the polled `login.uuid`, possibly empty).
    pub key: String,
    /// What was wrong.
    pub reason: String,
}

fn tidy(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hexadecimal form.
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `s` starts like an ISO-8601 date, `YYYY-MM-DD`.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// The Spark job's transformation, with the checks it lacked: a user without a UUID, a
/// first name, a known gender, a plausible e-mail, or an ISO date of birth is rejected (with
/// the reason) instead of written half-empty; whitespace is collapsed, e-mail and UUID lower
/// cased, the address built as the original built it.
pub fn clean(u: &RandomUser) -> Result<CreatedUser, String> {
    let id = u.login.uuid.trim().to_ascii_lowercase();
    if !is_uuid(&id) {
        return Err(format!("login.uuid {:?} is not a UUID", u.login.uuid));
    }
    let first_name = tidy(&u.name.first);
    if first_name.is_empty() {
        return Err("name.first is empty".into());
    }
    let gender = u.gender.trim().to_ascii_lowercase();
    if gender != "male" && gender != "female" {
        return Err(format!("gender {:?} is neither male nor female", u.gender));
    }
    let email = u.email.trim().to_ascii_lowercase();
    if !email
        .split_once('@')
        .is_some_and(|(a, d)| !a.is_empty() && d.contains('.'))
    {
        return Err(format!("email {:?} is not an address", u.email));
    }
    if !is_iso_date(&u.dob.date) {
        return Err(format!("dob.date {:?} is not an ISO date", u.dob.date));
    }
    if !(0..=130).contains(&u.dob.age) {
        return Err(format!("dob.age {} is out of range", u.dob.age));
    }
    let l = &u.location;
    let country = tidy(&l.country);
    Ok(CreatedUser {
        id,
        first_name,
        last_name: tidy(&u.name.last),
        gender,
        address: format!(
            "{} {}, {}, {}, {}",
            l.street.number,
            tidy(&l.street.name),
            tidy(&l.city),
            tidy(&l.state),
            country
        ),
        post_code: l.postcode.trim().to_string(),
        email,
        username: u.login.username.trim().to_string(),
        dob: u.dob.date.trim().to_string(),
        registered_date: u.registered.date.trim().to_string(),
        phone: u.phone.trim().to_string(),
        picture: u.picture.medium.trim().to_string(),
        country,
        age: u.dob.age,
    })
}

/// The age bands of the distribution, in order.
pub const AGE_BANDS: [&str; 6] = ["<30", "30-39", "40-49", "50-59", "60-69", "70+"];

/// The band of an age.
pub fn age_band(age: i32) -> &'static str {
    match age {
        ..=29 => AGE_BANDS[0],
        30..=39 => AGE_BANDS[1],
        40..=49 => AGE_BANDS[2],
        50..=59 => AGE_BANDS[3],
        60..=69 => AGE_BANDS[4],
        _ => AGE_BANDS[5],
    }
}

/// The key of the country-and-gender counts: `country|gender`.
pub fn country_gender_key(u: &CreatedUser) -> String {
    format!("{}|{}", u.country, u.gender)
}

/// Milliseconds since 1970 now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
