//! Statements: ksqlDB syntax parsed with `sqlparser`, after a small token pre-pass that lifts
//! out the clauses sqlparser does not know (`CREATE STREAM`, `KEY` columns, `WINDOW …`,
//! `WITHIN …`, `EMIT …`) and the short commands (`SHOW`, `DESCRIBE`, `DROP`, `EXPLAIN`,
//! `TERMINATE`). Lifted tokens are blanked in place, so sqlparser's line and column numbers
//! still point into the original text.

use std::time::Duration;

use sqlparser::ast;
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::SqlError;

/// A position in the SQL text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl From<Location> for Pos {
    fn from(l: Location) -> Self {
        Pos {
            line: l.line,
            column: l.column,
        }
    }
}

/// Stream or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `STREAM`: every record is an event.
    Stream,
    /// `TABLE`: the latest row per key.
    Table,
}

impl Kind {
    /// `STREAM` or `TABLE`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stream => "STREAM",
            Kind::Table => "TABLE",
        }
    }
}

/// `WINDOW TUMBLING|HOPPING|SESSION (…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `TUMBLING (SIZE …)`.
    Tumbling {
        /// Window size.
        size: Duration,
        /// `GRACE PERIOD`, if given.
        grace: Option<Duration>,
    },
    /// `HOPPING (SIZE …, ADVANCE BY …)`.
    Hopping {
        /// Window size.
        size: Duration,
        /// Advance.
        advance: Duration,
        /// `GRACE PERIOD`, if given.
        grace: Option<Duration>,
    },
    /// `SESSION (…)`: the inactivity gap.
    Session {
        /// Inactivity gap.
        gap: Duration,
        /// `GRACE PERIOD`, if given.
        grace: Option<Duration>,
    },
}

/// `EMIT CHANGES` or `EMIT FINAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every update.
    Changes,
    /// One final result per window, when it closes.
    Final,
}

/// `WITHIN …` of a stream-stream join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Within {
    /// How far the right side may precede the left.
    pub before: Duration,
    /// How far it may follow.
    pub after: Duration,
    /// `GRACE PERIOD`, if given.
    pub grace: Option<Duration>,
}

/// A `SELECT` with the ksqlDB clauses the pre-pass lifted out.
#[derive(Debug, Clone)]
pub struct Query {
    /// The query as sqlparser read it.
    pub select: Box<ast::Query>,
    /// `WINDOW …`.
    pub window: Option<(WindowSpec, Pos)>,
    /// `WITHIN …`.
    pub within: Option<(Within, Pos)>,
    /// `EMIT …`.
    pub emit: Option<Emit>,
    /// `PARTITION BY expr`: the new key of a stream query.
    pub partition_by: Option<Box<ast::Expr>>,
}

/// A `WITH (…)` property: upper-cased name, literal value, position.
#[derive(Debug, Clone)]
pub struct Property {
    /// Name, upper-cased.
    pub name: String,
    /// The value: a string, number or identifier as written.
    pub value: String,
    /// Where it was written.
    pub pos: Pos,
}

/// A column in `CREATE STREAM|TABLE name (…)`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Name (upper-cased unless quoted).
    pub name: String,
    /// Its type as written.
    pub ty: ast::DataType,
    /// `KEY` or `PRIMARY KEY`.
    pub key: bool,
    /// Where it was written.
    pub pos: Pos,
}

/// One parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE STREAM|TABLE name (cols) WITH (…)`.
    CreateSource {
        /// Stream or table.
        kind: Kind,
        /// Its name.
        name: String,
        /// Its columns.
        columns: Vec<ColumnDef>,
        /// `WITH (…)`.
        props: Vec<Property>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `CREATE STREAM|TABLE name WITH (…) AS SELECT …`.
    CreateAs {
        /// Stream or table.
        kind: Kind,
        /// Its name.
        name: String,
        /// `WITH (…)`.
        props: Vec<Property>,
        /// The query.
        query: Query,
    },
    /// `INSERT INTO name SELECT …`.
    InsertInto {
        /// The target stream.
        target: String,
        /// The query.
        query: Query,
    },
    /// A transient `SELECT` (pull, or push with `EMIT CHANGES`).
    Select(Query),
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`.
    Drop {
        /// Stream or table.
        kind: Kind,
        /// Its name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `DELETE TOPIC`.
        delete_topic: bool,
    },
    /// `SHOW|LIST STREAMS|TABLES|QUERIES|TOPICS`.
    Show(String),
    /// `DESCRIBE name [EXTENDED]`.
    Describe {
        /// Stream or table name.
        name: String,
    },
    /// `EXPLAIN query-id` or `EXPLAIN statement`.
    Explain(Box<ExplainTarget>),
    /// `TERMINATE query-id|ALL`.
    Terminate(String),
}

/// What `EXPLAIN` explains.
#[derive(Debug, Clone)]
pub enum ExplainTarget {
    /// A running query by id.
    Query(String),
    /// A statement, planned but not run.
    Statement(Statement),
}

/// A statement with its text and where it starts.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The statement.
    pub statement: Statement,
    /// Its text as written (without the `;`).
    pub text: String,
    /// Where it starts.
    pub pos: Pos,
}

fn err(pos: Pos, msg: impl Into<String>) -> SqlError {
    SqlError::at(pos, msg)
}

/// Upper-cases an unquoted identifier, as ksqlDB does.
pub(crate) fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_uppercase()
    }
}

/// Char offsets of line starts, to turn locations into offsets.
struct Text {
    chars: Vec<char>,
    line_starts: Vec<usize>,
}

impl Text {
    fn new(sql: &str) -> Self {
        let chars: Vec<char> = sql.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Text { chars, line_starts }
    }

    fn offset(&self, l: Location) -> usize {
        if l.line == 0 {
            return self.chars.len();
        }
        let start = self
            .line_starts
            .get(l.line as usize - 1)
            .copied()
            .unwrap_or(self.chars.len());
        (start + l.column as usize - 1).min(self.chars.len())
    }
}

/// The significant (non-whitespace) tokens of one statement.
struct Stmt<'a> {
    toks: Vec<&'a TokenWithSpan>,
    /// Indexes of tokens to blank before handing the text to sqlparser.
    blank: Vec<usize>,
    /// Replacement text for tokens (same length or shorter), by index.
    replace: Vec<(usize, &'static str)>,
}

impl Stmt<'_> {
    fn word(&self, i: usize) -> Option<String> {
        match &self.toks.get(i)?.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
            _ => None,
        }
    }

    fn is(&self, i: usize, word: &str) -> bool {
        self.word(i).as_deref() == Some(word)
    }

    fn pos(&self, i: usize) -> Pos {
        self.toks
            .get(i)
            .or(self.toks.last())
            .map(|t| t.span.start.into())
            .unwrap_or_default()
    }

    fn name(&self, i: usize) -> Result<String, SqlError> {
        match self.toks.get(i).map(|t| &t.token) {
            Some(Token::Word(w)) => Ok(if w.quote_style.is_some() {
                w.value.clone()
            } else {
                w.value.to_uppercase()
            }),
            _ => Err(err(self.pos(i), "expected a name")),
        }
    }

    fn end(&self, i: usize) -> Result<(), SqlError> {
        match self.toks.get(i) {
            None => Ok(()),
            Some(t) => Err(err(
                t.span.start.into(),
                format!("unexpected '{}'", t.token),
            )),
        }
    }
}

/// Splits `sql` into statements and parses each.
pub fn parse(sql: &str) -> Result<Vec<Parsed>, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| err(e.location.into(), e.message))?;
    let text = Text::new(sql);
    let mut out = Vec::new();
    let mut current: Vec<&TokenWithSpan> = Vec::new();
    let mut all: Vec<Vec<&TokenWithSpan>> = Vec::new();
    for t in &tokens {
        match &t.token {
            Token::SemiColon => all.push(std::mem::take(&mut current)),
            Token::Whitespace(_) | Token::EOF => {}
            _ => current.push(t),
        }
    }
    all.push(current);
    for toks in all.into_iter().filter(|t| !t.is_empty()) {
        let start = text.offset(toks[0].span.start);
        let end = text.offset(toks[toks.len() - 1].span.end);
        let stmt_text: String = text.chars[start..end].iter().collect();
        let pos: Pos = toks[0].span.start.into();
        let mut stmt = Stmt {
            toks,
            blank: Vec::new(),
            replace: Vec::new(),
        };
        let statement = parse_one(&mut stmt, 0, &text, &dialect)?;
        out.push(Parsed {
            statement,
            text: stmt_text,
            pos,
        });
    }
    Ok(out)
}

fn parse_one(
    s: &mut Stmt<'_>,
    at: usize,
    text: &Text,
    dialect: &GenericDialect,
) -> Result<Statement, SqlError> {
    let first = s
        .word(at)
        .ok_or_else(|| err(s.pos(at), "expected a statement"))?;
    match first.as_str() {
        "SHOW" | "LIST" => {
            let what = s
                .word(at + 1)
                .filter(|w| matches!(w.as_str(), "STREAMS" | "TABLES" | "QUERIES" | "TOPICS"))
                .ok_or_else(|| err(s.pos(at + 1), "expected STREAMS, TABLES, QUERIES or TOPICS"))?;
            let next = at + 2 + usize::from(s.is(at + 2, "EXTENDED"));
            s.end(next)?;
            Ok(Statement::Show(what))
        }
        "DESCRIBE" => {
            let name = s.name(at + 1)?;
            let extended = s.is(at + 2, "EXTENDED");
            s.end(at + 2 + usize::from(extended))?;
            Ok(Statement::Describe { name })
        }
        "DROP" => {
            let kind = match s.word(at + 1).as_deref() {
                Some("STREAM") => Kind::Stream,
                Some("TABLE") => Kind::Table,
                _ => return Err(err(s.pos(at + 1), "expected STREAM or TABLE")),
            };
            let mut i = at + 2;
            let if_exists = s.is(i, "IF") && s.is(i + 1, "EXISTS");
            if if_exists {
                i += 2;
            }
            let name = s.name(i)?;
            i += 1;
            let delete_topic = s.is(i, "DELETE") && s.is(i + 1, "TOPIC");
            if delete_topic {
                i += 2;
            }
            s.end(i)?;
            Ok(Statement::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            })
        }
        "TERMINATE" => {
            let id = s.name(at + 1)?;
            s.end(at + 2)?;
            Ok(Statement::Terminate(id))
        }
        "EXPLAIN" => {
            if s.toks.len() == at + 2 {
                return Ok(Statement::Explain(Box::new(ExplainTarget::Query(
                    s.name(at + 1)?,
                ))));
            }
            s.blank.push(at);
            let inner = parse_one(s, at + 1, text, dialect)?;
            Ok(Statement::Explain(Box::new(ExplainTarget::Statement(
                inner,
            ))))
        }
        "CREATE" | "INSERT" | "SELECT" => parse_with_sqlparser(s, at, text, dialect),
        _ => Err(err(s.pos(at), format!("unknown statement '{first}'"))),
    }
}

/// Reads `<number> <unit>` at `i`; returns the duration and the index after it.
fn duration(s: &Stmt<'_>, i: usize) -> Result<(Duration, usize), SqlError> {
    let n: u64 = match s.toks.get(i).map(|t| &t.token) {
        Some(Token::Number(n, _)) => n
            .parse()
            .map_err(|_| err(s.pos(i), format!("'{n}' is not a whole number")))?,
        _ => return Err(err(s.pos(i), "expected a number")),
    };
    let unit = s
        .word(i + 1)
        .ok_or_else(|| err(s.pos(i + 1), "expected a time unit"))?;
    let ms = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(err(s.pos(i + 1), format!("unknown time unit '{unit}'"))),
    };
    Ok((Duration::from_millis(n * ms), i + 2))
}

fn is_punct(s: &Stmt<'_>, i: usize, t: &Token) -> bool {
    s.toks.get(i).map(|x| &x.token) == Some(t)
}

/// Reads an optional `, GRACE PERIOD <d>` (or `GRACE PERIOD <d>`) at `i`.
fn grace(s: &Stmt<'_>, mut i: usize) -> Result<(Option<Duration>, usize), SqlError> {
    let mut grace = None;
    loop {
        let j = if is_punct(s, i, &Token::Comma) {
            i + 1
        } else {
            i
        };
        if s.is(j, "GRACE") && s.is(j + 1, "PERIOD") {
            let (d, next) = duration(s, j + 2)?;
            grace = Some(d);
            i = next;
        } else if s.is(j, "RETENTION") {
            // Accepted and ignored: stores keep windows for size + grace.
            i = duration(s, j + 1)?.1;
        } else {
            return Ok((grace, i));
        }
    }
}

fn window_clause(s: &Stmt<'_>, i: usize) -> Result<(WindowSpec, usize), SqlError> {
    let kind = s
        .word(i + 1)
        .ok_or_else(|| err(s.pos(i + 1), "expected TUMBLING, HOPPING or SESSION"))?;
    if !is_punct(s, i + 2, &Token::LParen) {
        return Err(err(s.pos(i + 2), "expected '('"));
    }
    let j = i + 3;
    let (spec, next) = match kind.as_str() {
        "TUMBLING" => {
            if !s.is(j, "SIZE") {
                return Err(err(s.pos(j), "expected SIZE"));
            }
            let (size, k) = duration(s, j + 1)?;
            let (grace, k) = grace(s, k)?;
            (WindowSpec::Tumbling { size, grace }, k)
        }
        "HOPPING" => {
            if !s.is(j, "SIZE") {
                return Err(err(s.pos(j), "expected SIZE"));
            }
            let (size, k) = duration(s, j + 1)?;
            if !(is_punct(s, k, &Token::Comma) && s.is(k + 1, "ADVANCE") && s.is(k + 2, "BY")) {
                return Err(err(s.pos(k), "expected ', ADVANCE BY'"));
            }
            let (advance, k) = duration(s, k + 3)?;
            let (grace, k) = grace(s, k)?;
            (
                WindowSpec::Hopping {
                    size,
                    advance,
                    grace,
                },
                k,
            )
        }
        "SESSION" => {
            let (gap, k) = duration(s, j)?;
            let (grace, k) = grace(s, k)?;
            (WindowSpec::Session { gap, grace }, k)
        }
        _ => {
            return Err(err(s.pos(i + 1), "expected TUMBLING, HOPPING or SESSION"));
        }
    };
    if !is_punct(s, next, &Token::RParen) {
        return Err(err(s.pos(next), "expected ')'"));
    }
    Ok((spec, next + 1))
}

fn within_clause(s: &Stmt<'_>, i: usize) -> Result<(Within, usize), SqlError> {
    let (before, after, k) = if is_punct(s, i + 1, &Token::LParen) {
        let (before, k) = duration(s, i + 2)?;
        if !is_punct(s, k, &Token::Comma) {
            return Err(err(s.pos(k), "expected ','"));
        }
        let (after, k) = duration(s, k + 1)?;
        if !is_punct(s, k, &Token::RParen) {
            return Err(err(s.pos(k), "expected ')'"));
        }
        (before, after, k + 1)
    } else {
        let (d, k) = duration(s, i + 1)?;
        (d, d, k)
    };
    let (grace, k) = grace(s, k)?;
    Ok((
        Within {
            before,
            after,
            grace,
        },
        k,
    ))
}

fn parse_with_sqlparser(
    s: &mut Stmt<'_>,
    at: usize,
    text: &Text,
    dialect: &GenericDialect,
) -> Result<Statement, SqlError> {
    let mut kind = Kind::Table;
    let mut create = false;
    if s.is(at, "CREATE") {
        create = true;
        let mut i = at + 1;
        if s.is(i, "OR") && s.is(i + 1, "REPLACE") {
            i += 2;
        }
        match s.word(i).as_deref() {
            Some("STREAM") => {
                kind = Kind::Stream;
                s.replace.push((i, "TABLE"));
            }
            Some("TABLE") => {}
            _ => return Err(err(s.pos(i), "expected STREAM or TABLE")),
        }
    }
    // Lift ksqlDB clauses out, tracking parenthesis depth for `KEY` column markers.
    let mut window = None;
    let mut within = None;
    let mut emit = None;
    let mut partition_range = None;
    let mut depth = 0usize;
    let mut i = at;
    let mut in_columns = false;
    while i < s.toks.len() {
        match &s.toks[i].token {
            Token::LParen => {
                depth += 1;
                if create
                    && depth == 1
                    && i > 0
                    && matches!(s.toks[i - 1].token, Token::Word(_))
                    && !s.is(i - 1, "WITH")
                    && !in_columns
                {
                    in_columns = true;
                }
            }
            Token::RParen => {
                depth = depth.saturating_sub(1);
            }
            Token::Word(_) => {
                let w = s.word(i).unwrap_or_default();
                if in_columns && depth == 1 && w == "KEY" && !s.is(i - 1, "PRIMARY") {
                    s.blank.push(i);
                } else if w == "WINDOW" && depth == 0 {
                    let (spec, next) = window_clause(s, i)?;
                    window = Some((spec, s.pos(i)));
                    s.blank.extend(i..next);
                    i = next;
                    continue;
                } else if w == "WITHIN" && depth == 0 {
                    let (spec, next) = within_clause(s, i)?;
                    within = Some((spec, s.pos(i)));
                    s.blank.extend(i..next);
                    i = next;
                    continue;
                } else if w == "PARTITION" && depth == 0 && s.is(i + 1, "BY") {
                    // The expression runs to EMIT, LIMIT or the end, at depth 0.
                    let mut j = i + 2;
                    let mut d = 0usize;
                    while j < s.toks.len() {
                        match &s.toks[j].token {
                            Token::LParen => d += 1,
                            Token::RParen => d = d.saturating_sub(1),
                            _ if d == 0 && (s.is(j, "EMIT") || s.is(j, "LIMIT")) => break,
                            _ => {}
                        }
                        j += 1;
                    }
                    if j == i + 2 {
                        return Err(err(s.pos(j), "expected an expression after PARTITION BY"));
                    }
                    partition_range = Some((i + 2, j));
                    s.blank.extend(i..j);
                    i = j;
                    continue;
                } else if w == "EMIT" && depth == 0 {
                    emit = match s.word(i + 1).as_deref() {
                        Some("CHANGES") => Some(Emit::Changes),
                        Some("FINAL") => Some(Emit::Final),
                        _ => return Err(err(s.pos(i + 1), "expected CHANGES or FINAL")),
                    };
                    s.blank.extend([i, i + 1]);
                    i += 2;
                    continue;
                }
            }
            _ => {}
        }
        if depth == 0 {
            in_columns = false;
        }
        i += 1;
    }
    // The statement's text in place within the whole source, everything else blanked, so
    // sqlparser reports positions in the original text.
    let mut chars: Vec<char> = text
        .chars
        .iter()
        .map(|c| if *c == '\n' { '\n' } else { ' ' })
        .collect();
    let from = text.offset(s.toks[at].span.start);
    let to = text.offset(s.toks[s.toks.len() - 1].span.end);
    chars[from..to].copy_from_slice(&text.chars[from..to]);
    for &b in &s.blank {
        let t = s.toks[b];
        for c in &mut chars[text.offset(t.span.start)..text.offset(t.span.end)] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }
    for &(r, with) in &s.replace {
        let start = text.offset(s.toks[r].span.start);
        let end = text.offset(s.toks[r].span.end);
        for (k, c) in chars[start..end].iter_mut().enumerate() {
            *c = with.chars().nth(k).unwrap_or(' ');
        }
    }
    let rewritten: String = chars.into_iter().collect();
    // PARTITION BY's expression, parsed alone in place (positions kept).
    let partition_by = match partition_range {
        None => None,
        Some((a, b)) => {
            let from = text.offset(s.toks[a].span.start);
            let to = text.offset(s.toks[b - 1].span.end);
            let only: String = text
                .chars
                .iter()
                .enumerate()
                .map(|(k, c)| match c {
                    '\n' => '\n',
                    c if (from..to).contains(&k) => *c,
                    _ => ' ',
                })
                .collect();
            Some(Box::new(
                Parser::new(dialect)
                    .try_with_sql(&only)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(SqlError::from_parser)?,
            ))
        }
    };
    let mut parsed = Parser::new(dialect)
        .try_with_sql(&rewritten)
        .and_then(|mut p| p.parse_statements())
        .map_err(SqlError::from_parser)?;
    if parsed.len() != 1 {
        return Err(err(s.pos(at), "expected one statement"));
    }
    let stmt = parsed.remove(0);
    let pos_of = |span: sqlparser::tokenizer::Span| -> Pos { span.start.into() };
    let query = |q: Box<ast::Query>| Query {
        select: q,
        window,
        within,
        emit,
        partition_by: partition_by.clone(),
    };
    match stmt {
        ast::Statement::CreateTable(ct) => {
            let name = object_name(&ct.name)?;
            let props = properties(&ct.table_options)?;
            if let Some(q) = ct.query {
                if !ct.columns.is_empty() {
                    return Err(err(
                        s.pos(at),
                        "CREATE … AS SELECT takes its columns from the query",
                    ));
                }
                return Ok(Statement::CreateAs {
                    kind,
                    name,
                    props,
                    query: query(q),
                });
            }
            let mut pk: Vec<String> = Vec::new();
            for c in &ct.constraints {
                if let ast::TableConstraint::PrimaryKey { columns, .. } = c {
                    for col in columns {
                        pk.push(col.to_string().to_uppercase());
                    }
                }
            }
            let blanked: Vec<Pos> = s.blank.iter().map(|&b| s.pos(b)).collect();
            let columns = ct
                .columns
                .iter()
                .map(|c| {
                    let name = ident_name(&c.name);
                    let primary = c.options.iter().any(|o| {
                        matches!(
                            o.option,
                            ast::ColumnOption::Unique {
                                is_primary: true,
                                ..
                            }
                        )
                    });
                    // A lifted `KEY` marker sits on the column's line after its name.
                    let span = sqlparser::ast::Spanned::span(c);
                    let marked = blanked.iter().any(|p| {
                        let p = Location::new(p.line, p.column);
                        p > span.start && next_column_start(&ct.columns, c).is_none_or(|n| p < n)
                    });
                    ColumnDef {
                        key: primary || marked || pk.contains(&name),
                        name,
                        ty: c.data_type.clone(),
                        pos: pos_of(c.name.span),
                    }
                })
                .collect();
            Ok(Statement::CreateSource {
                kind,
                name,
                columns,
                props,
                if_not_exists: ct.if_not_exists,
            })
        }
        ast::Statement::Insert(ins) => {
            let target = match &ins.table {
                ast::TableObject::TableName(n) => object_name(n)?,
                other => return Err(err(s.pos(at), format!("cannot insert into {other}"))),
            };
            let q = ins
                .source
                .ok_or_else(|| err(s.pos(at), "INSERT INTO needs a SELECT"))?;
            Ok(Statement::InsertInto {
                target,
                query: query(q),
            })
        }
        ast::Statement::Query(q) => Ok(Statement::Select(query(q))),
        other => Err(err(
            s.pos(at),
            format!("unsupported statement: {}", first_words(&other.to_string())),
        )),
    }
}

fn next_column_start(cols: &[ast::ColumnDef], c: &ast::ColumnDef) -> Option<Location> {
    let idx = cols.iter().position(|x| std::ptr::eq(x, c))?;
    cols.get(idx + 1)
        .map(|n| sqlparser::ast::Spanned::span(n).start)
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The name of a stream or table (upper-cased unless quoted).
pub(crate) fn object_name(n: &ast::ObjectName) -> Result<String, SqlError> {
    match n.0.as_slice() {
        [ast::ObjectNamePart::Identifier(i)] => Ok(ident_name(i)),
        _ => Err(err(
            pos_of_name(n),
            format!("expected a simple name, got {n}"),
        )),
    }
}

fn pos_of_name(n: &ast::ObjectName) -> Pos {
    sqlparser::ast::Spanned::span(n).start.into()
}

fn properties(opts: &ast::CreateTableOptions) -> Result<Vec<Property>, SqlError> {
    let list: &[ast::SqlOption] = match opts {
        ast::CreateTableOptions::None => &[],
        ast::CreateTableOptions::With(l)
        | ast::CreateTableOptions::Options(l)
        | ast::CreateTableOptions::Plain(l)
        | ast::CreateTableOptions::TableProperties(l) => l,
    };
    list.iter()
        .map(|o| match o {
            ast::SqlOption::KeyValue { key, value } => {
                let value = match value {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                            s.clone()
                        }
                        ast::Value::Number(n, _) => n.to_string(),
                        other => other.to_string(),
                    },
                    ast::Expr::Identifier(i) => i.value.clone(),
                    other => other.to_string(),
                };
                Ok(Property {
                    name: key.value.to_uppercase(),
                    value,
                    pos: key.span.start.into(),
                })
            }
            other => Err(err(
                sqlparser::ast::Spanned::span(other).start.into(),
                format!("expected NAME=value, got {other}"),
            )),
        })
        .collect()
}

/// Whether `kw` is sqlparser's keyword for a word (used to spot `KEY`).
#[allow(dead_code)]
fn is_keyword(t: &Token, kw: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.keyword == kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cta_statements_parse_with_the_legacy_key_property() {
        let sql = "CREATE TABLE turnstiles(station_id INT, station_name VARCHAR, line VARCHAR)\n  WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO', KEY='station_id');\nCREATE TABLE turnstile_summary WITH (VALUE_FORMAT='JSON') AS\n  SELECT station_id, COUNT(*) AS count FROM turnstiles GROUP BY station_id;";
        let parsed = parse(sql).unwrap();
        assert_eq!(parsed.len(), 2);
        match &parsed[0].statement {
            Statement::CreateSource {
                kind,
                name,
                columns,
                props,
                ..
            } => {
                assert_eq!((*kind, name.as_str()), (Kind::Table, "TURNSTILES"));
                assert_eq!(columns.len(), 3);
                assert!(columns.iter().all(|c| !c.key));
                assert_eq!(props[2].name, "KEY");
                assert_eq!(props[2].value, "station_id");
                assert_eq!(
                    props[1].pos,
                    Pos {
                        line: 2,
                        column: 51
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &parsed[1].statement,
            Statement::CreateAs { kind: Kind::Table, name, .. } if name == "TURNSTILE_SUMMARY"
        ));
        assert_eq!(parsed[1].pos, Pos { line: 3, column: 1 });
    }

    #[test]
    fn ksql_clauses_are_lifted() {
        let sql = "CREATE STREAM s (id VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n\
                   CREATE TABLE c AS SELECT id, COUNT(*) FROM s WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 30 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY id EMIT FINAL;";
        let parsed = parse(sql).unwrap();
        match &parsed[0].statement {
            Statement::CreateSource { kind, columns, .. } => {
                assert_eq!(*kind, Kind::Stream);
                assert!(columns[0].key);
                assert!(!columns[1].key);
            }
            other => panic!("{other:?}"),
        }
        match &parsed[1].statement {
            Statement::CreateAs { query, .. } => {
                assert_eq!(query.emit, Some(Emit::Final));
                assert_eq!(
                    query.window.unwrap().0,
                    WindowSpec::Hopping {
                        size: Duration::from_secs(60),
                        advance: Duration::from_secs(30),
                        grace: Some(Duration::from_secs(5))
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = parse("SHOW STREAMS;\nCREATE STREAM s (a INT) WITH (KAFKA_TOPIC='t')\n  AS SELEC")
            .unwrap_err();
        assert_eq!(e.pos().map(|p| p.line), Some(3), "{e}");
        let e = parse("SELECT * FROM s WINDOW TUMBLING (SIZE 1 FORTNIGHT);").unwrap_err();
        assert_eq!(
            e.pos(),
            Some(Pos {
                line: 1,
                column: 41
            }),
            "{e}"
        );
        let e = parse("SHOW\n  STREAMZ;").unwrap_err();
        assert_eq!(e.pos(), Some(Pos { line: 2, column: 3 }), "{e}");
    }
}
