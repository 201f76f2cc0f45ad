//! Statement results as text tables, as the `streamkit sql` prompt prints them.

use super::engine::StatementResult;
use super::format::Column;
use super::value::{Row, Value};

/// Renders rows under a header of column names, in a box:
///
/// ```
/// use streamkit::sql::{Column, SqlType, Value, render_table};
/// let cols = vec![Column { name: "STATION".into(), ty: SqlType::String }, Column { name: "N".into(), ty: SqlType::BigInt }];
/// let text = render_table(&cols, &[vec![Value::String("clark".into()), Value::BigInt(2)]]);
/// assert_eq!(text, "+---------+---+\n| STATION | N |\n+---------+---+\n| clark   | 2 |\n+---------+---+\n");
/// ```
pub fn render_table(columns: &[Column], rows: &[Row]) -> String {
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(Value::to_string).collect())
        .collect();
    text_table(&names, &cells)
}

fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &[String]| {
        widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                format!("| {c}{} ", " ".repeat(w - c.chars().count()))
            })
            .collect::<String>()
            + "|\n"
    };
    let mut out = rule.clone();
    out.push_str(&line(header));
    out.push_str(&rule);
    for r in rows {
        out.push_str(&line(r));
    }
    if !rows.is_empty() {
        out.push_str(&rule);
    }
    out
}

/// A statement's result as the prompt prints it.
pub fn render_result(result: &StatementResult) -> String {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match result {
        StatementResult::Status { message, .. } => format!("{message}\n"),
        StatementResult::Sources { sources, .. } => text_table(
            &s(&[
                "Name",
                "Kafka Topic",
                "Key Format",
                "Value Format",
                "Windowed",
            ]),
            &sources
                .iter()
                .map(|x| {
                    vec![
                        x.name.clone(),
                        x.topic.clone(),
                        x.key_format.name().into(),
                        x.value_format.name().into(),
                        x.window.is_some().to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        StatementResult::Queries { queries, .. } => text_table(
            &s(&["Query ID", "Sink", "Query"]),
            &queries
                .iter()
                .map(|q| vec![q.id.clone(), q.sink.clone(), q.statement.clone()])
                .collect::<Vec<_>>(),
        ),
        StatementResult::Description {
            source, read_by, ..
        } => {
            let mut out = format!(
                "Name: {}\nType: {}\nKafka topic: {} (key {}, value {})\n",
                source.name,
                source.kind.name(),
                source.topic,
                source.key_format.name(),
                source.value_format.name()
            );
            let rows: Vec<Vec<String>> = source
                .key
                .iter()
                .map(|c| vec![c.name.clone(), format!("{} (key)", c.ty)])
                .chain(
                    source
                        .value
                        .iter()
                        .map(|c| vec![c.name.clone(), c.ty.to_string()]),
                )
                .collect();
            out.push_str(&text_table(&s(&["Field", "Type"]), &rows));
            if let Some(w) = &source.writer {
                out.push_str(&format!("Written by: {w}\n"));
            }
            if !read_by.is_empty() {
                out.push_str(&format!("Read by: {}\n", read_by.join(", ")));
            }
            out
        }
        StatementResult::Explain {
            query, topology, ..
        } => format!("{query}\n\n{topology}"),
        StatementResult::Rows { columns, rows, .. } => render_table(columns, rows),
    }
}
