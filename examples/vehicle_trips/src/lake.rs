//! The data lake (the seed's Azure Data Lake containers landing, staging and common): Parquet
//! files through `object_store`, on the local filesystem by default, in Azure Blob Storage
//! (`az://container/path`, `abfs://…`, `https://account.blob.core.windows.net/…`) or S3
//! (`s3://bucket/path`) by URL, with credentials from the environment (`AZURE_STORAGE_*`,
//! `AWS_*`).
//!
//! Landing files are named by the Kafka partition and the offset range they hold
//! (`landing/<topic>/date=YYYY-MM-DD/hour=HH/part-p000-<first>-<last>.parquet`) and written
//! with create-if-absent, so the lake itself records how far each partition has been written:
//! a writer that restarts from an older committed offset skips what the files already hold.

use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::model::{DAY_MS, HOUR_MS, format_date};

/// The zone raw records land in.
pub const LANDING: &str = "landing";
/// The zone of cleaned, typed records.
pub const STAGING: &str = "staging";
/// The zone of summaries.
pub const COMMON: &str = "common";

/// One raw record as it came from Kafka: a landing row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandingRow {
    /// Kafka partition.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
    /// The record's timestamp, epoch ms.
    pub timestamp: i64,
    /// Its key.
    pub key: Option<String>,
    /// Its value, as sent (JSON from the vehicles, or whatever arrived).
    pub value: Option<String>,
}

/// A data lake: an object store and the path inside it the zones live under.
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.url).finish()
    }
}

/// The range a landing file holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileRange {
    /// Kafka partition.
    pub partition: i32,
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
}

/// `part-p003-00000000000000000120-00000000000000000179.parquet` → (3, 120, 179).
pub fn parse_landing_name(name: &str) -> Option<FileRange> {
    let rest = name.strip_prefix("part-p")?.strip_suffix(".parquet")?;
    let mut it = rest.splitn(3, '-');
    Some(FileRange {
        partition: it.next()?.parse().ok()?,
        first: it.next()?.parse().ok()?,
        last: it.next()?.parse().ok()?,
    })
}

/// The file name of a landing range.
pub fn landing_name(r: FileRange) -> String {
    format!(
        "part-p{:03}-{:020}-{:020}.parquet",
        r.partition, r.first, r.last
    )
}

/// `date=YYYY-MM-DD/hour=HH` of epoch ms.
pub fn hour_partition(ts: i64) -> String {
    format!(
        "date={}/hour={:02}",
        format_date(ts.div_euclid(DAY_MS)),
        ts.rem_euclid(DAY_MS) / HOUR_MS
    )
}

/// The schema of landing files.
pub fn landing_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "kafka_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Landing rows as a record batch.
pub fn landing_batch(rows: &[LandingRow]) -> anyhow::Result<RecordBatch> {
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut key = StringBuilder::new();
    let mut value = StringBuilder::new();
    for r in rows {
        partition.append_value(r.partition);
        offset.append_value(r.offset);
        ts.append_value(r.timestamp);
        key.append_option(r.key.as_deref());
        value.append_option(r.value.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(ts.finish()),
        Arc::new(key.finish()),
        Arc::new(value.finish()),
    ];
    Ok(RecordBatch::try_new(landing_schema(), columns)?)
}

/// A record batch as a Parquet file (Snappy).
pub fn to_parquet(batch: &RecordBatch) -> anyhow::Result<Bytes> {
    to_parquet_batches(std::slice::from_ref(batch))
}

/// Record batches of one schema (at least one) as a Parquet file (Snappy), in order.
pub fn to_parquet_batches(batches: &[RecordBatch]) -> anyhow::Result<Bytes> {
    let first = batches.first().context("no batch to write")?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, first.schema(), Some(props))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(Bytes::from(out))
}

/// Every batch of a Parquet file.
pub fn from_parquet(bytes: Bytes) -> anyhow::Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

impl Lake {
    /// Opens the lake at `url`: a path or `file://` URL (created when missing), `az://`,
    /// `abfs://`, `https://…blob.core.windows.net/…`, or `s3://`.
    pub fn open(url: &str) -> anyhow::Result<Lake> {
        Self::open_with(url, &[])
    }

    /// Like [`open`](Self::open), with `object_store` configuration keys for Azure or S3 on top
    /// of the environment's (`azure_storage_account_name`, `azure_storage_use_emulator`,
    /// `aws_endpoint`, `aws_allow_http`, …).
    pub fn open_with(url: &str, options: &[(String, String)]) -> anyhow::Result<Lake> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lake-io")
            .enable_all()
            .build()?;
        let (store, root): (Arc<dyn ObjectStore>, Path) = if let Some(rest) = url
            .strip_prefix("file://")
            .or((!url.contains("://")).then_some(url))
        {
            std::fs::create_dir_all(rest).with_context(|| format!("creating {rest}"))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(rest)
                .with_context(|| format!("opening {rest}"))?;
            (Arc::new(fs), Path::default())
        } else {
            let parsed = url::Url::parse(url).with_context(|| format!("--lake {url:?}"))?;
            let scheme = parsed.scheme();
            let is_azure = matches!(scheme, "az" | "azure" | "abfs" | "abfss" | "adl")
                || parsed.host_str().is_some_and(|h| {
                    h.ends_with(".blob.core.windows.net") || h.ends_with(".dfs.core.windows.net")
                });
            if is_azure {
                let mut builder =
                    object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url);
                for (k, v) in options {
                    let key = k
                        .parse::<object_store::azure::AzureConfigKey>()
                        .with_context(|| format!("--lake-option {k}: not an Azure setting"))?;
                    builder = builder.with_config(key, v);
                }
                let store = builder.build().with_context(|| format!("opening {url}"))?;
                // az://container/path: the path after the container.
                let path = match scheme {
                    "https" => {
                        let p = parsed.path().trim_start_matches('/');
                        p.split_once('/').map_or("", |(_, rest)| rest).to_string()
                    }
                    _ => parsed.path().trim_start_matches('/').to_string(),
                };
                (Arc::new(store), Path::from(path))
            } else if scheme == "s3" || scheme == "s3a" {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
                for (k, v) in options {
                    let key = k
                        .parse::<object_store::aws::AmazonS3ConfigKey>()
                        .with_context(|| format!("--lake-option {k}: not an S3 setting"))?;
                    builder = builder.with_config(key, v);
                }
                let store = builder.build().with_context(|| format!("opening {url}"))?;
                (
                    Arc::new(store),
                    Path::from(parsed.path().trim_start_matches('/')),
                )
            } else {
                bail!(
                    "--lake {url:?}: not a path, file://, az://, abfs://, https://…blob.core.windows.net or s3:// URL"
                );
            }
        };
        Ok(Lake {
            store,
            root,
            url: url.to_string(),
            runtime,
        })
    }

    /// A lake on any object store (tests: an in-memory one).
    pub fn with_store(store: Arc<dyn ObjectStore>, root: &str) -> anyhow::Result<Lake> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        Ok(Lake {
            store,
            root: Path::from(root),
            url: format!("memory:///{root}"),
            runtime,
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `relative` under the lake's root.
    pub fn path(&self, relative: &str) -> Path {
        let mut p = self.root.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.child(part);
        }
        p
    }

    fn relative(&self, p: &Path) -> String {
        let full = p.as_ref();
        let root = self.root.as_ref();
        if root.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(root)
                .unwrap_or(full)
                .trim_start_matches('/')
                .to_string()
        }
    }

    /// The files under `relative`, as paths relative to the root, sorted.
    pub fn list(&self, relative: &str) -> anyhow::Result<Vec<String>> {
        let prefix = self.path(relative);
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&prefix)).try_collect())
            .with_context(|| format!("listing {relative} in {}", self.url))?;
        let mut out: Vec<String> = metas.iter().map(|m| self.relative(&m.location)).collect();
        out.sort();
        Ok(out)
    }

    /// Reads a file.
    pub fn get(&self, relative: &str) -> anyhow::Result<Bytes> {
        let p = self.path(relative);
        self.runtime
            .block_on(async { self.store.get(&p).await?.bytes().await })
            .with_context(|| format!("reading {relative} from {}", self.url))
    }

    /// Whether a file is there.
    pub fn exists(&self, relative: &str) -> anyhow::Result<bool> {
        let p = self.path(relative);
        match self.runtime.block_on(self.store.head(&p)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("looking for {relative} in {}", self.url)),
        }
    }

    /// Writes a file, replacing any.
    pub fn put(&self, relative: &str, bytes: Bytes) -> anyhow::Result<()> {
        let p = self.path(relative);
        self.runtime
            .block_on(self.store.put(&p, PutPayload::from(bytes)))
            .with_context(|| format!("writing {relative} to {}", self.url))?;
        Ok(())
    }

    /// Writes a file unless one is there; returns whether it wrote it.
    pub fn create(&self, relative: &str, bytes: Bytes) -> anyhow::Result<bool> {
        let p = self.path(relative);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .runtime
            .block_on(self.store.put_opts(&p, PutPayload::from(bytes), opts))
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("writing {relative} to {}", self.url)),
        }
    }

    /// Deletes a file.
    pub fn delete(&self, relative: &str) -> anyhow::Result<()> {
        let p = self.path(relative);
        self.runtime
            .block_on(self.store.delete(&p))
            .with_context(|| format!("deleting {relative} from {}", self.url))
    }

    /// Deletes the files under `relative`.
    pub fn delete_under(&self, relative: &str) -> anyhow::Result<usize> {
        let files = self.list(relative)?;
        for f in &files {
            let p = self.path(f);
            self.runtime
                .block_on(self.store.delete(&p))
                .with_context(|| format!("deleting {f} from {}", self.url))?;
        }
        Ok(files.len())
    }

    /// The landing files of `topic`, with their ranges.
    pub fn landing_files(&self, topic: &str) -> anyhow::Result<Vec<(String, FileRange)>> {
        Ok(self
            .list(&format!("{LANDING}/{topic}"))?
            .into_iter()
            .filter_map(|f| {
                let name = f.rsplit('/').next()?.to_string();
                Some((f, parse_landing_name(&name)?))
            })
            .collect())
    }

    /// The last offset of `partition` the landing files of `topic` hold (-1: none).
    pub fn landed_up_to(&self, topic: &str, partition: i32) -> anyhow::Result<i64> {
        Ok(self
            .landing_files(topic)?
            .iter()
            .filter(|(_, r)| r.partition == partition)
            .map(|(_, r)| r.last)
            .max()
            .unwrap_or(-1))
    }

    /// Writes `rows` (one partition's, offsets ascending) to landing: each run of consecutive
    /// rows in the same hour of their timestamps to one file under that hour, named by the
    /// offsets it holds, in offset order. So every file holds a contiguous range, and after a
    /// failure part-way the files written are a prefix: the highest landed offset says what
    /// landed. Returns the files written (a file already there is not written again).
    pub fn land(&self, topic: &str, rows: &[LandingRow]) -> anyhow::Result<Vec<String>> {
        Ok(self
            .land_runs(topic, rows)?
            .into_iter()
            .map(|(path, _)| path)
            .collect())
    }

    /// Like [`land`](Self::land), returning each file written with the rows it holds.
    pub fn land_runs(
        &self,
        topic: &str,
        rows: &[LandingRow],
    ) -> anyhow::Result<Vec<(String, Vec<LandingRow>)>> {
        let mut runs: Vec<(String, Vec<LandingRow>)> = Vec::new();
        for r in rows {
            let hour = hour_partition(r.timestamp);
            match runs.last_mut() {
                Some((h, run)) if *h == hour => run.push(r.clone()),
                _ => runs.push((hour, vec![r.clone()])),
            }
        }
        let mut written = Vec::new();
        for (hour, rows) in runs {
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                continue;
            };
            let name = landing_name(FileRange {
                partition: first.partition,
                first: first.offset,
                last: last.offset,
            });
            let path = format!("{LANDING}/{topic}/{hour}/{name}");
            if self.create(&path, to_parquet(&landing_batch(&rows)?)?)? {
                written.push((path, rows));
            }
        }
        Ok(written)
    }

    /// Reads every landing row of `topic` in the files under `date=…` of `day`.
    pub fn read_landing_day(&self, topic: &str, day: i64) -> anyhow::Result<Vec<LandingRow>> {
        let mut rows = Vec::new();
        for f in self.list(&format!("{LANDING}/{topic}/date={}", format_date(day)))? {
            if !f.ends_with(".parquet") {
                continue;
            }
            for batch in from_parquet(self.get(&f)?)? {
                rows.extend(landing_rows(&batch)?);
            }
        }
        rows.sort_by_key(|r| (r.partition, r.offset));
        Ok(rows)
    }
}

/// The rows of a landing batch.
pub fn landing_rows(batch: &RecordBatch) -> anyhow::Result<Vec<LandingRow>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("a landing file without column {name}"))
    };
    let partition = col("partition")?
        .as_primitive_opt::<Int32Type>()
        .context("partition")?;
    let offset = col("offset")?
        .as_primitive_opt::<Int64Type>()
        .context("offset")?;
    let ts = col("kafka_timestamp")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .context("kafka_timestamp")?;
    let key = col("key")?.as_string_opt::<i32>().context("key")?;
    let value = col("value")?.as_string_opt::<i32>().context("value")?;
    Ok((0..batch.num_rows())
        .map(|i| LandingRow {
            partition: partition.value(i),
            offset: offset.value(i),
            timestamp: ts.value(i),
            key: (!key.is_null(i)).then(|| key.value(i).to_string()),
            value: (!value.is_null(i)).then(|| value.value(i).to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_names_round_trip() {
        let r = FileRange {
            partition: 1,
            first: 120,
            last: 179,
        };
        let name = landing_name(r);
        assert_eq!(
            name,
            "part-p001-00000000000000000120-00000000000000000179.parquet"
        );
        assert_eq!(parse_landing_name(&name), Some(r));
        assert_eq!(parse_landing_name("part-p001-12.parquet"), None);
        assert_eq!(
            hour_partition(20_792 * DAY_MS + 13 * HOUR_MS + 1),
            "date=2026-12-05/hour=13"
        );
    }

    #[test]
    fn a_file_is_landed_once_and_reads_back() {
        let lake =
            Lake::with_store(Arc::new(object_store::memory::InMemory::new()), "lake").unwrap();
        let rows: Vec<LandingRow> = (0..10)
            .map(|i| LandingRow {
                partition: 0,
                offset: i,
                // Five in one hour, five in the next.
                timestamp: 20_792 * DAY_MS + 13 * HOUR_MS - 5 * 60_000 + i * 60_000,
                key: Some("t1".into()),
                value: (i != 3).then(|| format!("{{\"i\":{i}}}")),
            })
            .collect();
        let written = lake.land("pos", &rows).unwrap();
        assert_eq!(written.len(), 2, "{written:?}");
        assert!(
            lake.land("pos", &rows).unwrap().is_empty(),
            "not written twice"
        );
        assert_eq!(lake.landed_up_to("pos", 0).unwrap(), 9);
        assert_eq!(lake.landed_up_to("pos", 1).unwrap(), -1);
        assert_eq!(lake.read_landing_day("pos", 20_792).unwrap(), rows);
    }

    #[test]
    fn timestamps_going_back_across_an_hour_make_contiguous_files() {
        let lake = Lake::with_store(Arc::new(object_store::memory::InMemory::new()), "").unwrap();
        let at = |minute: i64| 20_792 * DAY_MS + 13 * HOUR_MS + minute * 60_000;
        // Offsets 0..6 with times 12:58, 12:59, 13:00, 12:59 (late), 13:01, 13:02.
        let rows: Vec<LandingRow> = [-2, -1, 0, -1, 1, 2]
            .iter()
            .enumerate()
            .map(|(i, &m)| LandingRow {
                partition: 0,
                offset: i as i64,
                timestamp: at(m),
                key: None,
                value: None,
            })
            .collect();
        let written = lake.land("pos", &rows).unwrap();
        let ranges: Vec<(String, i64, i64)> = written
            .iter()
            .map(|p| {
                let (dir, name) = p.rsplit_once('/').unwrap();
                let r = parse_landing_name(name).unwrap();
                (dir.rsplit('/').next().unwrap().to_string(), r.first, r.last)
            })
            .collect();
        assert_eq!(
            ranges,
            [
                ("hour=12".to_string(), 0, 1),
                ("hour=13".to_string(), 2, 2),
                ("hour=12".to_string(), 3, 3),
                ("hour=13".to_string(), 4, 5),
            ]
        );
    }
}
