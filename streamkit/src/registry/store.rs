//! The registry's state: schemas by id, subjects' versions, compatibility levels; and the
//! records of the `_schemas` topic that rebuild it.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility as Resolvable, SchemaCompatibility};
use serde_json::{Value as Json, json};

/// A subject's (or the global) compatibility level, as Confluent's registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Level {
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_uppercase().as_str() {
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            "NONE" => Level::None,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
            Level::None => "NONE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    /// Whether data written with `new` can be read by `old`-era readers and the reverse, as
    /// the level asks. Partial resolvability (an enum symbol or union branch missing) counts
    /// as incompatible, as in Confluent's checker.
    fn allows(self, old: &Schema, new: &Schema) -> Result<(), String> {
        let reads = |writer: &Schema, reader: &Schema, what: &str| -> Result<(), String> {
            match SchemaCompatibility::can_read(writer, reader) {
                Ok(Resolvable::Full) => Ok(()),
                Ok(_) => Err(format!("{what}: some values cannot be resolved")),
                Err(e) => Err(format!("{what}: {e}")),
            }
        };
        let backward = || {
            reads(
                old,
                new,
                "the new schema cannot read data written with an earlier one",
            )
        };
        let forward = || {
            reads(
                new,
                old,
                "an earlier schema cannot read data written with the new one",
            )
        };
        match self {
            Level::None => Ok(()),
            Level::Backward | Level::BackwardTransitive => backward(),
            Level::Forward | Level::ForwardTransitive => forward(),
            Level::Full | Level::FullTransitive => backward().and_then(|_| forward()),
        }
    }
}

/// A schema as registered: its text, type and references.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub schema: String,
    /// `AVRO` (omitted on the wire), `JSON` or `PROTOBUF`.
    pub schema_type: String,
    pub references: Json,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Version {
    pub version: u32,
    pub id: u32,
    pub deleted: bool,
}

/// Why a request is refused: the HTTP status and Confluent error code, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn subject_not_found(subject: &str) -> Self {
        Refusal::new(404, 40401, format!("Subject '{subject}' not found."))
    }
    pub fn version_not_found(version: &str) -> Self {
        Refusal::new(404, 40402, format!("Version {version} not found."))
    }
    pub fn schema_not_found() -> Self {
        Refusal::new(404, 40403, "Schema not found")
    }
    pub fn invalid_schema(why: &str) -> Self {
        Refusal::new(422, 42201, format!("Invalid schema: {why}"))
    }
    pub fn invalid_version(version: &str) -> Self {
        Refusal::new(
            422,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }
    pub fn invalid_level(level: &str) -> Self {
        Refusal::new(
            422,
            42203,
            format!(
                "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive; got {level}"
            ),
        )
    }
}

/// One record of the `_schemas` topic: its JSON key, and its JSON value (`None`: a tombstone).
pub(crate) type LogRecord = (Json, Option<Json>);

/// The registry's whole state, rebuilt by [`apply`](Self::apply)ing the `_schemas` topic.
#[derive(Debug, Default)]
pub(crate) struct State {
    schemas: BTreeMap<u32, Stored>,
    /// (type, normalized text) → id: the same schema gets the same id in every subject.
    ids: HashMap<(String, String), u32>,
    subjects: BTreeMap<String, Vec<Version>>,
    global: Level,
    levels: HashMap<String, Level>,
}

/// A schema's text without insignificant whitespace and with object keys in one order, so
/// that re-registering it (formatted differently) finds the same id.
fn normalize(schema: &str) -> String {
    serde_json::from_str::<Json>(schema)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| schema.trim().to_string())
}

impl State {
    /// Applies one `_schemas` record (unknown key types, such as Confluent's `NOOP`, are
    /// ignored).
    pub fn apply(&mut self, (key, value): &LogRecord) {
        let subject = key.get("subject").and_then(Json::as_str);
        match key.get("keytype").and_then(Json::as_str) {
            Some("SCHEMA") => {
                let (Some(subject), Some(version)) =
                    (subject, key.get("version").and_then(Json::as_u64))
                else {
                    return;
                };
                let version = version as u32;
                let versions = self.subjects.entry(subject.to_string()).or_default();
                let Some(v) = value else {
                    // A tombstone: the version is deleted permanently.
                    versions.retain(|x| x.version != version);
                    if versions.is_empty() {
                        self.subjects.remove(subject);
                    }
                    return;
                };
                let (Some(id), Some(text)) = (
                    v.get("id").and_then(Json::as_u64),
                    v.get("schema").and_then(Json::as_str),
                ) else {
                    return;
                };
                let id = id as u32;
                let schema_type = v
                    .get("schemaType")
                    .and_then(Json::as_str)
                    .unwrap_or("AVRO")
                    .to_string();
                let deleted = v.get("deleted").and_then(Json::as_bool).unwrap_or(false);
                self.ids
                    .entry((schema_type.clone(), normalize(text)))
                    .or_insert(id);
                self.schemas.entry(id).or_insert_with(|| Stored {
                    schema: text.to_string(),
                    schema_type,
                    references: v.get("references").cloned().unwrap_or(json!([])),
                });
                match versions.iter_mut().find(|x| x.version == version) {
                    Some(x) => x.deleted = deleted,
                    None => {
                        versions.push(Version {
                            version,
                            id,
                            deleted,
                        });
                        versions.sort_by_key(|x| x.version);
                    }
                }
            }
            Some("CONFIG") => {
                let level = value
                    .as_ref()
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Json::as_str)
                    .and_then(Level::parse);
                match (subject, level) {
                    (None, Some(l)) => self.global = l,
                    (Some(s), Some(l)) => {
                        self.levels.insert(s.to_string(), l);
                    }
                    (Some(s), None) => {
                        self.levels.remove(s);
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }

    pub fn schema(&self, id: u32) -> Option<&Stored> {
        self.schemas.get(&id)
    }

    pub fn global_level(&self) -> Level {
        self.global
    }

    pub fn subject_level(&self, subject: &str) -> Option<Level> {
        self.levels.get(subject).copied()
    }

    fn level(&self, subject: &str) -> Level {
        self.subject_level(subject).unwrap_or(self.global)
    }

    /// Subjects with at least one live version (or any version, with `deleted`).
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, v)| v.iter().any(|x| deleted || !x.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// A subject's versions (live ones, or all with `deleted`); 40401 when it has none.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<Version>, Refusal> {
        let v: Vec<Version> = self
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|x| deleted || !x.deleted)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        if v.is_empty() {
            return Err(Refusal::subject_not_found(subject));
        }
        Ok(v)
    }

    /// A version by number or `latest` (`-1` too, as the original accepts).
    pub fn version(&self, subject: &str, spec: &str, deleted: bool) -> Result<Version, Refusal> {
        let versions = self.versions(subject, deleted)?;
        if spec == "latest" || spec == "-1" {
            return Ok(*versions.last().expect("versions() is never empty"));
        }
        let n: u32 = spec
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Refusal::invalid_version(spec))?;
        versions
            .into_iter()
            .find(|x| x.version == n)
            .ok_or_else(|| Refusal::version_not_found(spec))
    }

    /// The live version of `subject` holding the schema `text`, if any.
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        schema_type: &str,
        deleted: bool,
    ) -> Result<Version, Refusal> {
        let versions = self.versions(subject, deleted)?;
        let id = self
            .ids
            .get(&(schema_type.to_string(), normalize(text)))
            .ok_or_else(Refusal::schema_not_found)?;
        versions
            .into_iter()
            .rev()
            .find(|x| x.id == *id)
            .ok_or_else(Refusal::schema_not_found)
    }

    /// Checks `text` against the subject's level: the latest live version, or all of them
    /// for transitive levels. Returns why it is not compatible.
    pub fn check(
        &self,
        subject: &str,
        text: &str,
        schema_type: &str,
        against: Option<Version>,
    ) -> Result<Result<(), Vec<String>>, Refusal> {
        let new = parse(text, schema_type)?;
        let level = self.level(subject);
        let live = self.versions(subject, false).unwrap_or_default();
        let olds: Vec<Version> = match against {
            Some(v) => vec![v],
            None if level.transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        let mut why = Vec::new();
        for old in olds {
            let Some(stored) = self.schemas.get(&old.id) else {
                continue;
            };
            let (Some(new), Ok(Some(old_schema))) =
                (&new, parse(&stored.schema, &stored.schema_type))
            else {
                continue;
            };
            if let Err(e) = level.allows(&old_schema, new) {
                why.push(format!("version {}: {e}", old.version));
            }
        }
        Ok(if why.is_empty() { Ok(()) } else { Err(why) })
    }

    /// What registering `text` under `subject` needs: `Ok(Ok(id))` when it is already a live
    /// version there, `Ok(Err(record))` with the `_schemas` record to write, or a refusal
    /// (invalid, 42201; incompatible, 409).
    pub fn register(
        &self,
        subject: &str,
        text: &str,
        schema_type: &str,
        references: Json,
    ) -> Result<Result<u32, LogRecord>, Refusal> {
        if let Ok(v) = self.lookup(subject, text, schema_type, false) {
            return Ok(Ok(v.id));
        }
        if let Err(why) = self.check(subject, text, schema_type, None)? {
            return Err(Refusal::new(
                409,
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {why:?}"
                ),
            ));
        }
        let id = self
            .ids
            .get(&(schema_type.to_string(), normalize(text)))
            .copied()
            .unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |m| m + 1));
        // Versions keep counting after soft and hard deletes, as in the original.
        let version = self
            .subjects
            .get(subject)
            .and_then(|v| v.last())
            .map_or(1, |v| v.version + 1);
        Ok(Err(schema_record(
            subject,
            version,
            id,
            text,
            schema_type,
            references,
            false,
        )))
    }

    /// The records that soft-delete (or, with `permanent`, hard-delete) `versions`.
    pub fn delete_records(
        &self,
        subject: &str,
        versions: &[Version],
        permanent: bool,
    ) -> Vec<LogRecord> {
        versions
            .iter()
            .filter_map(|v| {
                if permanent {
                    return Some((schema_key(subject, v.version), None));
                }
                let s = self.schemas.get(&v.id)?;
                let (k, val) = schema_record(
                    subject,
                    v.version,
                    v.id,
                    &s.schema,
                    &s.schema_type,
                    s.references.clone(),
                    true,
                );
                Some((k, val))
            })
            .collect()
    }

    /// The (subject, version) pairs that hold schema `id`.
    pub fn usages(&self, id: u32) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(s, vs)| {
                vs.iter()
                    .filter(move |v| v.id == id && !v.deleted)
                    .map(move |v| (s.clone(), v.version))
            })
            .collect()
    }
}

fn schema_key(subject: &str, version: u32) -> Json {
    json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})
}

fn schema_record(
    subject: &str,
    version: u32,
    id: u32,
    text: &str,
    schema_type: &str,
    references: Json,
    deleted: bool,
) -> LogRecord {
    let mut value = json!({
        "subject": subject, "version": version, "id": id, "schema": text, "deleted": deleted,
    });
    if schema_type != "AVRO" {
        value["schemaType"] = json!(schema_type);
    }
    if references.as_array().is_some_and(|r| !r.is_empty()) {
        value["references"] = references;
    }
    (schema_key(subject, version), Some(value))
}

/// The `_schemas` record that sets a compatibility level (`None` clears a subject's).
pub(crate) fn config_record(subject: Option<&str>, level: Option<Level>) -> LogRecord {
    (
        json!({"keytype": "CONFIG", "subject": subject, "magic": 0}),
        level.map(|l| json!({"compatibilityLevel": l.name()})),
    )
}

/// Parses an Avro schema (42201 when invalid). Other schema types are stored as given, without
/// compatibility checks: `Ok(None)`.
pub(crate) fn parse(text: &str, schema_type: &str) -> Result<Option<Schema>, Refusal> {
    if schema_type != "AVRO" {
        return Ok(None);
    }
    Schema::parse_str(text)
        .map(Some)
        .map_err(|e| Refusal::invalid_schema(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

    fn registered(state: &mut State, subject: &str, text: &str) -> u32 {
        match state.register(subject, text, "AVRO", json!([])).unwrap() {
            Ok(id) => id,
            Err(record) => {
                state.apply(&record);
                state.lookup(subject, text, "AVRO", false).unwrap().id
            }
        }
    }

    #[test]
    fn registering_is_idempotent_and_ids_are_shared_across_subjects() {
        let mut s = State::default();
        let a = registered(&mut s, "t-value", V1);
        let pretty = V1.replace(',', ", ");
        assert_eq!(registered(&mut s, "t-value", &pretty), a);
        assert_eq!(registered(&mut s, "u-value", V1), a);
        assert_eq!(s.versions("t-value", false).unwrap().len(), 1);
        assert_eq!(registered(&mut s, "t-value", V2_DEFAULT), a + 1);
    }

    #[test]
    fn backward_refuses_a_field_without_default_and_none_allows_it() {
        let mut s = State::default();
        registered(&mut s, "t-value", V1);
        let err = s
            .register("t-value", V2_NO_DEFAULT, "AVRO", json!([]))
            .unwrap_err();
        assert_eq!((err.status, err.code), (409, 409));
        s.apply(&config_record(Some("t-value"), Some(Level::None)));
        assert!(
            s.register("t-value", V2_NO_DEFAULT, "AVRO", json!([]))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn forward_and_transitive_levels_check_the_right_versions() {
        let mut s = State::default();
        s.apply(&config_record(None, Some(Level::Forward)));
        registered(&mut s, "t", V1);
        // Removing a field without default breaks forward (old readers need it), not backward.
        let empty = r#"{"type":"record","name":"T","fields":[]}"#;
        assert!(s.check("t", empty, "AVRO", None).unwrap().is_err());
        s.apply(&config_record(None, Some(Level::Backward)));
        assert!(s.check("t", empty, "AVRO", None).unwrap().is_ok());
        registered(&mut s, "t", empty);
        // `a` comes back as a string: v2 data (no `a`) reads fine, v1 data (an int) does not.
        let v3 =
            r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string","default":""}]}"#;
        assert!(s.check("t", v3, "AVRO", None).unwrap().is_ok());
        s.apply(&config_record(Some("t"), Some(Level::BackwardTransitive)));
        let why = s.check("t", v3, "AVRO", None).unwrap().unwrap_err();
        assert_eq!(why.len(), 1);
        assert!(why[0].starts_with("version 1:"), "{why:?}");
    }

    #[test]
    fn soft_deleted_versions_disappear_but_their_ids_still_resolve() {
        let mut s = State::default();
        let id = registered(&mut s, "t", V1);
        let versions = s.versions("t", false).unwrap();
        for r in s.delete_records("t", &versions, false) {
            s.apply(&r);
        }
        assert_eq!(s.versions("t", false).unwrap_err().code, 40401);
        assert_eq!(s.versions("t", true).unwrap().len(), 1);
        assert!(s.schema(id).is_some());
        assert_eq!(registered(&mut s, "t", V1), id);
        assert_eq!(s.version("t", "latest", false).unwrap().version, 2);
    }

    #[test]
    fn invalid_schemas_and_versions_get_confluent_codes() {
        let s = State::default();
        let err = s
            .register("t", "{\"type\":\"nope\"}", "AVRO", json!([]))
            .unwrap_err();
        assert_eq!((err.status, err.code), (422, 42201));
        let mut s = State::default();
        registered(&mut s, "t", V1);
        assert_eq!(s.version("t", "x", false).unwrap_err().code, 42202);
        assert_eq!(s.version("t", "7", false).unwrap_err().code, 40402);
    }
}
