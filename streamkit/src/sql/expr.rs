//! Expressions: sqlparser's AST compiled against a row's columns into a small evaluable tree.

use sqlparser::ast::{self, Spanned};

use super::SqlError;
use super::parse::{Pos, ident_name};
use super::value::{SqlType, Value};

/// A column as expressions see it: optional qualifier (source name or alias), name, type.
#[derive(Debug, Clone)]
pub(crate) struct ScopeCol {
    pub qualifier: Vec<String>,
    pub name: String,
    pub ty: SqlType,
}

/// A compiled expression over a row given as a slice of values.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Col(usize),
    Lit(Value),
    Bin(Box<Expr>, BinOp, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Cast(Box<Expr>, SqlType),
    Func(Scalar, Vec<Expr>),
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    InList(Box<Expr>, Vec<Expr>, bool),
    Like(Box<Expr>, String, bool),
    /// `struct->field`.
    Field(Box<Expr>, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Concat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Upper,
    Lower,
    Len,
    Abs,
    Round,
    Floor,
    Ceil,
    Coalesce,
    Concat,
    Substring,
    Trim,
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    LatestByOffset,
    CollectList,
}

/// One aggregate call in a query: the function and its argument over the input row.
#[derive(Debug, Clone)]
pub(crate) struct AggCall {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub arg_ty: SqlType,
    pub pos: Pos,
}

impl AggCall {
    /// The result type.
    pub fn ty(&self) -> SqlType {
        match self.func {
            AggFunc::CountStar | AggFunc::Count => SqlType::BigInt,
            AggFunc::Avg => SqlType::Double,
            AggFunc::Sum | AggFunc::Min | AggFunc::Max | AggFunc::LatestByOffset => {
                self.arg_ty.clone()
            }
            AggFunc::CollectList => SqlType::Array(Box::new(self.arg_ty.clone())),
        }
    }
}

/// Where aggregates and grouping expressions go when compiling a projection over an
/// aggregation's output row `[group keys…, WINDOWSTART, WINDOWEND, aggregates…]`.
pub(crate) struct AggContext {
    /// The input row's columns (aggregate arguments are compiled against them).
    pub input: Vec<ScopeCol>,
    /// GROUP BY expressions (display form) with their types.
    pub group_by: Vec<(String, SqlType)>,
    /// Aggregates found so far.
    pub aggs: Vec<AggCall>,
}

pub(crate) fn pos(e: &impl Spanned) -> Pos {
    e.span().start.into()
}

pub(crate) fn err(e: &impl Spanned, msg: impl Into<String>) -> SqlError {
    SqlError::at(pos(e), msg)
}

/// Converts a SQL type as written.
pub(crate) fn sql_type(t: &ast::DataType, at: Pos) -> Result<SqlType, SqlError> {
    use ast::DataType as D;
    Ok(match t {
        D::Boolean | D::Bool => SqlType::Boolean,
        D::Int(_) | D::Integer(_) | D::Int4(_) | D::SmallInt(_) | D::TinyInt(_) => SqlType::Int,
        D::BigInt(_) | D::Int8(_) | D::Int64 => SqlType::BigInt,
        D::Double(_) | D::DoublePrecision | D::Float(_) | D::Real | D::Float64 => SqlType::Double,
        D::Varchar(_) | D::String(_) | D::Text | D::Char(_) | D::CharVarying(_) => SqlType::String,
        D::Array(ast::ArrayElemTypeDef::AngleBracket(inner))
        | D::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _))
        | D::Array(ast::ArrayElemTypeDef::Parenthesis(inner)) => {
            SqlType::Array(Box::new(sql_type(inner, at)?))
        }
        D::Struct(fields, _) => SqlType::Struct(
            fields
                .iter()
                .map(|f| {
                    let name = f.field_name.as_ref().ok_or_else(|| {
                        SqlError::at(at, "a STRUCT field needs a name (STRUCT<name TYPE, …>)")
                    })?;
                    Ok((ident_name(name), sql_type(&f.field_type, at)?))
                })
                .collect::<Result<_, SqlError>>()?,
        ),
        D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("STRING") => SqlType::String,
        other => {
            return Err(SqlError::at(
                at,
                format!(
                    "unsupported type {other} (BOOLEAN, INT, BIGINT, DOUBLE, VARCHAR, ARRAY<T>, STRUCT<…> are)"
                ),
            ));
        }
    })
}

/// Rebuilds `e` with its leftmost operand replaced by `f(operand)`, when `e` is an operator
/// the parser wrongly put under a `->` (see `Compiler::dereference`); `None` when `e` is
/// already an operand.
fn graft_leftmost(e: &ast::Expr, f: &mut dyn FnMut(ast::Expr) -> ast::Expr) -> Option<ast::Expr> {
    use ast::Expr as E;
    let mut e = e.clone();
    let slot: &mut ast::Expr = match &mut e {
        E::BinaryOp { left, op, .. } if *op != ast::BinaryOperator::Arrow => left,
        E::IsNull(x) | E::IsNotNull(x) => x,
        E::Between { expr, .. } | E::InList { expr, .. } | E::Like { expr, .. } => expr,
        _ => return None,
    };
    let inner = graft_leftmost(slot, f).unwrap_or_else(|| f(slot.clone()));
    *slot = inner;
    Some(e)
}

/// Rebuilds `e` with its rightmost operand replaced by `f(operand)`, when `e` is a binary
/// operator the parser wrongly put under a `->`; `None` when `e` is already an operand.
fn graft_rightmost(e: &ast::Expr, f: &mut dyn FnMut(ast::Expr) -> ast::Expr) -> Option<ast::Expr> {
    use ast::Expr as E;
    let mut e = e.clone();
    let slot: &mut ast::Expr = match &mut e {
        E::BinaryOp { right, op, .. } if *op != ast::BinaryOperator::Arrow => right,
        E::UnaryOp { expr, .. } => expr,
        _ => return None,
    };
    let inner = graft_rightmost(slot, f).unwrap_or_else(|| f(slot.clone()));
    *slot = inner;
    Some(e)
}

fn numeric_result(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    use SqlType::*;
    match (a, b) {
        (Double, Int | BigInt | Double) | (Int | BigInt, Double) => Some(Double),
        (BigInt, Int | BigInt) | (Int, BigInt) => Some(BigInt),
        (Int, Int) => Some(Int),
        _ => None,
    }
}

fn agg_func(name: &str) -> Option<AggFunc> {
    Some(match name {
        "COUNT" => AggFunc::Count,
        "SUM" => AggFunc::Sum,
        "AVG" => AggFunc::Avg,
        "MIN" => AggFunc::Min,
        "MAX" => AggFunc::Max,
        "LATEST_BY_OFFSET" => AggFunc::LatestByOffset,
        "COLLECT_LIST" => AggFunc::CollectList,
        _ => return None,
    })
}

/// Whether `e` contains an aggregate call.
pub(crate) fn has_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            agg_func(&f.name.to_string().to_uppercase()).is_some()
                || func_args(f).is_ok_and(|args| {
                    args.iter()
                        .any(|a| matches!(a, ast::FunctionArgExpr::Expr(x) if has_aggregate(x)))
                })
        }
        E::Nested(x) | E::UnaryOp { expr: x, .. } | E::IsNull(x) | E::IsNotNull(x) => {
            has_aggregate(x)
        }
        E::Cast { expr, .. } | E::Like { expr, .. } => has_aggregate(expr),
        E::BinaryOp { left, right, .. } => has_aggregate(left) || has_aggregate(right),
        E::Between {
            expr, low, high, ..
        } => has_aggregate(expr) || has_aggregate(low) || has_aggregate(high),
        E::InList { expr, list, .. } => has_aggregate(expr) || list.iter().any(has_aggregate),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(has_aggregate)
                || conditions
                    .iter()
                    .any(|w| has_aggregate(&w.condition) || has_aggregate(&w.result))
                || else_result.as_deref().is_some_and(has_aggregate)
        }
        _ => false,
    }
}

fn func_args(f: &ast::Function) -> Result<Vec<&ast::FunctionArgExpr>, SqlError> {
    match &f.args {
        ast::FunctionArguments::None => Ok(Vec::new()),
        ast::FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(x) => Ok(x),
                other => Err(err(f, format!("unsupported argument {other}"))),
            })
            .collect(),
        ast::FunctionArguments::Subquery(_) => Err(err(f, "subqueries are not supported")),
    }
}

/// Compiles expressions against `scope`, or against an aggregation's output when `agg` is set.
pub(crate) struct Compiler<'a> {
    pub scope: &'a [ScopeCol],
    pub agg: Option<&'a mut AggContext>,
}

impl Compiler<'_> {
    /// Compiles `e` to an expression and its type (`None` for a NULL literal).
    pub fn compile(&mut self, e: &ast::Expr) -> Result<(Expr, Option<SqlType>), SqlError> {
        if let Some(agg) = self.agg.as_deref_mut() {
            let text = e.to_string().to_uppercase();
            if let Some(i) = agg.group_by.iter().position(|(g, _)| *g == text) {
                return Ok((Expr::Col(i), Some(agg.group_by[i].1.clone())));
            }
            if let ast::Expr::Function(f) = e {
                let name = f.name.to_string().to_uppercase();
                if let Some(mut func) = agg_func(&name) {
                    let args = func_args(f)?;
                    let (arg, arg_ty) = match args.as_slice() {
                        [ast::FunctionArgExpr::Wildcard] if func == AggFunc::Count => {
                            func = AggFunc::CountStar;
                            (None, SqlType::BigInt)
                        }
                        [ast::FunctionArgExpr::Expr(x)] => {
                            if has_aggregate(x) {
                                return Err(err(x, "aggregates cannot be nested"));
                            }
                            let input = agg.input.clone();
                            let (c, ty) = Compiler {
                                scope: &input,
                                agg: None,
                            }
                            .compile(x)?;
                            let ty = ty.unwrap_or(SqlType::String);
                            if matches!(func, AggFunc::Sum | AggFunc::Avg)
                                && numeric_result(&ty, &ty).is_none()
                            {
                                return Err(err(x, format!("{name} needs a number, got {ty}")));
                            }
                            (Some(c), ty)
                        }
                        _ => return Err(err(f, format!("{name} takes one argument"))),
                    };
                    let call = AggCall {
                        func,
                        arg,
                        arg_ty,
                        pos: pos(f),
                    };
                    let ty = call.ty();
                    // Identical calls share one aggregate.
                    let idx = agg.aggs.len();
                    agg.aggs.push(call);
                    return Ok((Expr::Col(agg.group_by.len() + 2 + idx), Some(ty)));
                }
            }
        }
        self.compile_inner(e)
    }

    fn typed(&mut self, e: &ast::Expr) -> Result<(Expr, SqlType), SqlError> {
        let (c, t) = self.compile(e)?;
        Ok((c, t.unwrap_or(SqlType::String)))
    }

    fn column(
        &self,
        parts: &[ast::Ident],
        e: &ast::Expr,
    ) -> Result<(Expr, Option<SqlType>), SqlError> {
        let names: Vec<String> = parts.iter().map(ident_name).collect();
        let (qual, name) = names.split_at(names.len() - 1);
        let name = &name[0];
        if let Some(agg) = self.agg.as_deref() {
            // Window bounds are the two columns after the group keys.
            let k = agg.group_by.len();
            return match name.as_str() {
                "WINDOWSTART" => Ok((Expr::Col(k), Some(SqlType::BigInt))),
                "WINDOWEND" => Ok((Expr::Col(k + 1), Some(SqlType::BigInt))),
                _ => Err(err(
                    e,
                    format!("column {name} must be in GROUP BY or inside an aggregate"),
                )),
            };
        }
        let matches: Vec<usize> = self
            .scope
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.name == *name && qual.iter().all(|q| c.qualifier.iter().any(|x| x == q))
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok((Expr::Col(*i), Some(self.scope[*i].ty.clone()))),
            [] => Err(err(e, format!("unknown column {}", names.join(".")))),
            _ => Err(err(
                e,
                format!("column {name} is ambiguous; qualify it with its source"),
            )),
        }
    }

    /// `left->right`. The SQL parser gives `->` a lower precedence than ksqlDB's (it binds
    /// tightest there), so `s->f = 1` arrives as `s->(f = 1)` and `x = s->f` as `(x = s)->f`;
    /// such trees are rebuilt with the arrow around the operand next to it.
    fn dereference(
        &mut self,
        e: &ast::Expr,
        left: &ast::Expr,
        right: &ast::Expr,
    ) -> Result<(Expr, Option<SqlType>), SqlError> {
        use ast::Expr as E;
        let arrow = |l: ast::Expr, r: ast::Expr| E::BinaryOp {
            left: Box::new(l),
            op: ast::BinaryOperator::Arrow,
            right: Box::new(r),
        };
        if let Some(fixed) = graft_rightmost(left, &mut |leaf| arrow(leaf, right.clone())) {
            return self.compile(&fixed);
        }
        if let Some(fixed) = graft_leftmost(right, &mut |leaf| arrow(left.clone(), leaf)) {
            return self.compile(&fixed);
        }
        let name = match right {
            E::Identifier(i) => ident_name(i),
            other => return Err(err(other, "-> needs a field name")),
        };
        let (x, t) = self.compile(left)?;
        let ty = match t {
            Some(SqlType::Struct(fields)) => fields
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| err(right, format!("no field {name} in {}", left)))?,
            None => SqlType::String,
            Some(other) => {
                return Err(err(
                    e,
                    format!("-> reads a field of a STRUCT, and {left} is {other}"),
                ));
            }
        };
        Ok((Expr::Field(Box::new(x), name), Some(ty)))
    }

    fn compile_inner(&mut self, e: &ast::Expr) -> Result<(Expr, Option<SqlType>), SqlError> {
        use ast::Expr as E;
        Ok(match e {
            E::Identifier(i) => return self.column(std::slice::from_ref(i), e),
            E::CompoundIdentifier(parts) => return self.column(parts, e),
            E::Nested(x) => return self.compile(x),
            E::Value(v) => match &v.value {
                ast::Value::Null => (Expr::Lit(Value::Null), None),
                ast::Value::Boolean(b) => (Expr::Lit(Value::Boolean(*b)), Some(SqlType::Boolean)),
                ast::Value::SingleQuotedString(s) => {
                    (Expr::Lit(Value::String(s.clone())), Some(SqlType::String))
                }
                ast::Value::Number(n, _) => {
                    let n = n.to_string();
                    if let Ok(i) = n.parse::<i32>() {
                        (Expr::Lit(Value::Int(i)), Some(SqlType::Int))
                    } else if let Ok(i) = n.parse::<i64>() {
                        (Expr::Lit(Value::BigInt(i)), Some(SqlType::BigInt))
                    } else {
                        let d = n
                            .parse::<f64>()
                            .map_err(|_| err(e, format!("bad number {n}")))?;
                        (Expr::Lit(Value::Double(d)), Some(SqlType::Double))
                    }
                }
                other => return Err(err(e, format!("unsupported literal {other}"))),
            },
            E::UnaryOp { op, expr } => {
                let (c, t) = self.compile(expr)?;
                match op {
                    ast::UnaryOperator::Not => (Expr::Not(Box::new(c)), Some(SqlType::Boolean)),
                    ast::UnaryOperator::Minus => (Expr::Neg(Box::new(c)), t),
                    ast::UnaryOperator::Plus => (c, t),
                    other => return Err(err(e, format!("unsupported operator {other}"))),
                }
            }
            E::BinaryOp {
                left,
                op: ast::BinaryOperator::Arrow,
                right,
            } => return self.dereference(e, left, right),
            E::BinaryOp { left, op, right } => {
                let (l, lt) = self.compile(left)?;
                let (r, rt) = self.compile(right)?;
                use ast::BinaryOperator as B;
                let op2 = match op {
                    B::Plus => BinOp::Add,
                    B::Minus => BinOp::Sub,
                    B::Multiply => BinOp::Mul,
                    B::Divide => BinOp::Div,
                    B::Modulo => BinOp::Mod,
                    B::Eq => BinOp::Eq,
                    B::NotEq => BinOp::Ne,
                    B::Lt => BinOp::Lt,
                    B::LtEq => BinOp::Le,
                    B::Gt => BinOp::Gt,
                    B::GtEq => BinOp::Ge,
                    B::And => BinOp::And,
                    B::Or => BinOp::Or,
                    B::StringConcat => BinOp::Concat,
                    other => return Err(err(e, format!("unsupported operator {other}"))),
                };
                let ty = match op2 {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                        let (a, b) = (lt.clone().or(rt.clone()), rt.or(lt));
                        match (a, b) {
                            (Some(a), Some(b)) => {
                                Some(numeric_result(&a, &b).ok_or_else(|| {
                                    err(e, format!("cannot apply {op} to {a} and {b}"))
                                })?)
                            }
                            _ => None,
                        }
                    }
                    BinOp::Concat => Some(SqlType::String),
                    _ => Some(SqlType::Boolean),
                };
                (Expr::Bin(Box::new(l), op2, Box::new(r)), ty)
            }
            E::IsNull(x) => (
                Expr::IsNull(Box::new(self.compile(x)?.0), false),
                Some(SqlType::Boolean),
            ),
            E::IsNotNull(x) => (
                Expr::IsNull(Box::new(self.compile(x)?.0), true),
                Some(SqlType::Boolean),
            ),
            E::Cast {
                expr, data_type, ..
            } => {
                let ty = sql_type(data_type, pos(e))?;
                (
                    Expr::Cast(Box::new(self.compile(expr)?.0), ty.clone()),
                    Some(ty),
                )
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, _) = self.compile(expr)?;
                let (lo, _) = self.compile(low)?;
                let (hi, _) = self.compile(high)?;
                let inside = Expr::Bin(
                    Box::new(Expr::Bin(Box::new(x.clone()), BinOp::Ge, Box::new(lo))),
                    BinOp::And,
                    Box::new(Expr::Bin(Box::new(x), BinOp::Le, Box::new(hi))),
                );
                let c = if *negated {
                    Expr::Not(Box::new(inside))
                } else {
                    inside
                };
                (c, Some(SqlType::Boolean))
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                let (x, _) = self.compile(expr)?;
                let items = list
                    .iter()
                    .map(|i| Ok(self.compile(i)?.0))
                    .collect::<Result<_, SqlError>>()?;
                (
                    Expr::InList(Box::new(x), items, *negated),
                    Some(SqlType::Boolean),
                )
            }
            E::Like {
                negated,
                expr,
                pattern,
                ..
            } => {
                let (x, _) = self.compile(expr)?;
                let pattern = match pattern.as_ref() {
                    E::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        _ => return Err(err(pattern.as_ref(), "LIKE needs a string pattern")),
                    },
                    other => return Err(err(other, "LIKE needs a string pattern")),
                };
                (
                    Expr::Like(Box::new(x), pattern, *negated),
                    Some(SqlType::Boolean),
                )
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand.as_ref().map(|o| self.compile(o)).transpose()?;
                let mut ty = None;
                let mut whens = Vec::new();
                for w in conditions {
                    let (c, _) = self.compile(&w.condition)?;
                    let c = match &operand {
                        Some((o, _)) => Expr::Bin(Box::new(o.clone()), BinOp::Eq, Box::new(c)),
                        None => c,
                    };
                    let (r, rt) = self.compile(&w.result)?;
                    ty = ty.or(rt);
                    whens.push((c, r));
                }
                let else_ = match else_result {
                    Some(x) => {
                        let (c, t) = self.compile(x)?;
                        ty = ty.or(t);
                        Some(Box::new(c))
                    }
                    None => None,
                };
                (Expr::Case(whens, else_), ty)
            }
            E::Function(f) => {
                let name = f.name.to_string().to_uppercase();
                if agg_func(&name).is_some() {
                    return Err(err(e, format!("aggregate {name} needs a GROUP BY")));
                }
                let args = func_args(f)?;
                let mut compiled = Vec::new();
                let mut types = Vec::new();
                for a in args {
                    match a {
                        ast::FunctionArgExpr::Expr(x) => {
                            let (c, t) = self.typed(x)?;
                            compiled.push(c);
                            types.push(t);
                        }
                        _ => return Err(err(e, format!("{name} does not take *"))),
                    }
                }
                let (scalar, ty, arity): (Scalar, SqlType, std::ops::RangeInclusive<usize>) =
                    match name.as_str() {
                        "UCASE" | "UPPER" => (Scalar::Upper, SqlType::String, 1..=1),
                        "LCASE" | "LOWER" => (Scalar::Lower, SqlType::String, 1..=1),
                        "LEN" | "LENGTH" => (Scalar::Len, SqlType::Int, 1..=1),
                        "TRIM" => (Scalar::Trim, SqlType::String, 1..=1),
                        "ABS" => (
                            Scalar::Abs,
                            types.first().cloned().unwrap_or(SqlType::Double),
                            1..=1,
                        ),
                        "ROUND" => (Scalar::Round, SqlType::BigInt, 1..=1),
                        "FLOOR" => (Scalar::Floor, SqlType::Double, 1..=1),
                        "CEIL" => (Scalar::Ceil, SqlType::Double, 1..=1),
                        "COALESCE" | "IFNULL" => (
                            Scalar::Coalesce,
                            types.first().cloned().unwrap_or(SqlType::String),
                            1..=usize::MAX,
                        ),
                        "CONCAT" => (Scalar::Concat, SqlType::String, 1..=usize::MAX),
                        "SUBSTRING" => (Scalar::Substring, SqlType::String, 2..=3),
                        _ => return Err(err(e, format!("unknown function {name}"))),
                    };
                if !arity.contains(&compiled.len()) {
                    return Err(err(e, format!("wrong number of arguments to {name}")));
                }
                (Expr::Func(scalar, compiled), Some(ty))
            }
            E::Trim { expr, .. } => (
                Expr::Func(Scalar::Trim, vec![self.compile(expr)?.0]),
                Some(SqlType::String),
            ),
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.compile(expr)?.0];
                if let Some(f) = substring_from {
                    args.push(self.compile(f)?.0);
                }
                if let Some(f) = substring_for {
                    args.push(self.compile(f)?.0);
                }
                (Expr::Func(Scalar::Substring, args), Some(SqlType::String))
            }
            other => return Err(err(e, format!("unsupported expression {other}"))),
        })
    }
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn like(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    fn go(s: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some(('_', rest)) => !s.is_empty() && go(&s[1..], rest),
            Some((c, rest)) => s.first() == Some(c) && go(&s[1..], rest),
        }
    }
    go(&s, &p)
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    use Value::*;
    let int = |x: Option<i64>| x.map(BigInt).ok_or_else(|| "integer overflow".to_string());
    Ok(match (a, b) {
        (Null, _) | (_, Null) => Null,
        (Int(x), Int(y)) => match op {
            BinOp::Add => x.checked_add(*y).map(Int).ok_or("integer overflow")?,
            BinOp::Sub => x.checked_sub(*y).map(Int).ok_or("integer overflow")?,
            BinOp::Mul => x.checked_mul(*y).map(Int).ok_or("integer overflow")?,
            BinOp::Div if *y == 0 => Null,
            // MIN / -1 does not fit: an overflow like the other operators' (a plain `/`
            // panics); `x % -1` is 0 for every x, which `wrapping_rem` gives without panicking.
            BinOp::Div => x.checked_div(*y).map(Int).ok_or("integer overflow")?,
            BinOp::Mod if *y == 0 => Null,
            _ => Int(x.wrapping_rem(*y)),
        },
        (Int(_) | BigInt(_), Int(_) | BigInt(_)) => {
            let (x, y) = (
                a.as_f64().map(|_| ()).and(match a {
                    Int(i) => Some(i64::from(*i)),
                    BigInt(i) => Some(*i),
                    _ => None,
                }),
                match b {
                    Int(i) => i64::from(*i),
                    BigInt(i) => *i,
                    _ => 0,
                },
            );
            let x = x.unwrap_or(0);
            match op {
                BinOp::Add => int(x.checked_add(y))?,
                BinOp::Sub => int(x.checked_sub(y))?,
                BinOp::Mul => int(x.checked_mul(y))?,
                BinOp::Div | BinOp::Mod if y == 0 => Null,
                BinOp::Div => int(x.checked_div(y))?,
                _ => BigInt(x.wrapping_rem(y)),
            }
        }
        _ => {
            let (x, y) = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x, y),
                _ => return Err(format!("cannot compute {a} and {b} arithmetically")),
            };
            Double(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                _ => x % y,
            })
        }
    })
}

impl Expr {
    /// Evaluates over `row`; errors name what failed (a bad cast, overflow).
    pub fn eval(&self, row: &[Value]) -> Result<Value, String> {
        Ok(match self {
            Expr::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Lit(v) => v.clone(),
            Expr::Not(x) => match truth(&x.eval(row)?) {
                Some(b) => Value::Boolean(!b),
                None => Value::Null,
            },
            Expr::Neg(x) => match x.eval(row)? {
                Value::Int(i) => Value::Int(-i),
                Value::BigInt(i) => Value::BigInt(-i),
                Value::Double(d) => Value::Double(-d),
                Value::Null => Value::Null,
                other => return Err(format!("cannot negate {other}")),
            },
            Expr::IsNull(x, negated) => Value::Boolean(x.eval(row)?.is_null() != *negated),
            Expr::Cast(x, ty) => x.eval(row)?.cast(ty)?,
            Expr::Bin(l, op, r) => {
                let a = l.eval(row)?;
                match op {
                    BinOp::And => {
                        if truth(&a) == Some(false) {
                            return Ok(Value::Boolean(false));
                        }
                        let b = r.eval(row)?;
                        return Ok(match (truth(&a), truth(&b)) {
                            (_, Some(false)) => Value::Boolean(false),
                            (Some(true), Some(true)) => Value::Boolean(true),
                            _ => Value::Null,
                        });
                    }
                    BinOp::Or => {
                        if truth(&a) == Some(true) {
                            return Ok(Value::Boolean(true));
                        }
                        let b = r.eval(row)?;
                        return Ok(match (truth(&a), truth(&b)) {
                            (_, Some(true)) => Value::Boolean(true),
                            (Some(false), Some(false)) => Value::Boolean(false),
                            _ => Value::Null,
                        });
                    }
                    _ => {}
                }
                let b = r.eval(row)?;
                use std::cmp::Ordering::*;
                match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                        arith(*op, &a, &b)?
                    }
                    BinOp::Concat => {
                        if a.is_null() || b.is_null() {
                            Value::Null
                        } else {
                            Value::String(format!("{a}{b}"))
                        }
                    }
                    _ => match a.compare(&b) {
                        None if a.is_null() || b.is_null() => Value::Null,
                        None => return Err(format!("cannot compare {a} and {b}")),
                        Some(o) => Value::Boolean(match op {
                            BinOp::Eq => o == Equal,
                            BinOp::Ne => o != Equal,
                            BinOp::Lt => o == Less,
                            BinOp::Le => o != Greater,
                            BinOp::Gt => o == Greater,
                            _ => o != Less,
                        }),
                    },
                }
            }
            Expr::Case(whens, else_) => {
                for (c, r) in whens {
                    if truth(&c.eval(row)?) == Some(true) {
                        return r.eval(row);
                    }
                }
                match else_ {
                    Some(x) => x.eval(row)?,
                    None => Value::Null,
                }
            }
            Expr::InList(x, items, negated) => {
                let v = x.eval(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut found = false;
                for i in items {
                    if v.compare(&i.eval(row)?) == Some(std::cmp::Ordering::Equal) {
                        found = true;
                        break;
                    }
                }
                Value::Boolean(found != *negated)
            }
            Expr::Field(x, name) => x.eval(row)?.field(name),
            Expr::Like(x, p, negated) => match x.eval(row)? {
                Value::String(s) => Value::Boolean(like(&s, p) != *negated),
                Value::Null => Value::Null,
                other => return Err(format!("LIKE needs a string, got {other}")),
            },
            Expr::Func(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(row))
                    .collect::<Result<Vec<_>, _>>()?;
                scalar(*f, vals)?
            }
        })
    }

    /// Evaluates a condition: only TRUE passes (NULL and FALSE do not).
    pub fn test(&self, row: &[Value]) -> Result<bool, String> {
        Ok(truth(&self.eval(row)?) == Some(true))
    }
}

fn scalar(f: Scalar, vals: Vec<Value>) -> Result<Value, String> {
    if f == Scalar::Coalesce {
        return Ok(vals
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null));
    }
    if vals.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let s = |v: &Value| v.to_string();
    Ok(match f {
        Scalar::Upper => Value::String(s(&vals[0]).to_uppercase()),
        Scalar::Lower => Value::String(s(&vals[0]).to_lowercase()),
        Scalar::Trim => Value::String(s(&vals[0]).trim().to_string()),
        Scalar::Len => Value::Int(s(&vals[0]).chars().count() as i32),
        Scalar::Concat => Value::String(vals.iter().map(s).collect()),
        Scalar::Abs => match &vals[0] {
            Value::Int(i) => Value::Int(i.abs()),
            Value::BigInt(i) => Value::BigInt(i.abs()),
            Value::Double(d) => Value::Double(d.abs()),
            other => return Err(format!("ABS needs a number, got {other}")),
        },
        Scalar::Round | Scalar::Floor | Scalar::Ceil => {
            let d = vals[0]
                .as_f64()
                .ok_or_else(|| format!("{f:?} needs a number"))?;
            match f {
                Scalar::Round => Value::BigInt(d.round() as i64),
                Scalar::Floor => Value::Double(d.floor()),
                _ => Value::Double(d.ceil()),
            }
        }
        Scalar::Substring => {
            let chars: Vec<char> = s(&vals[0]).chars().collect();
            let start = match &vals[1] {
                Value::Int(i) => i64::from(*i),
                Value::BigInt(i) => *i,
                other => {
                    return Err(format!(
                        "SUBSTRING position must be an integer, got {other}"
                    ));
                }
            };
            let from = (start.max(1) - 1) as usize;
            let len = match vals.get(2) {
                Some(Value::Int(i)) => (*i).max(0) as usize,
                Some(Value::BigInt(i)) => (*i).max(0) as usize,
                _ => usize::MAX,
            };
            Value::String(chars.iter().skip(from).take(len).collect())
        }
        Scalar::Coalesce => unreachable!("handled above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn eval(sql: &str, row: &[Value]) -> Result<Value, String> {
        let scope = vec![
            ScopeCol {
                qualifier: vec!["S".into()],
                name: "A".into(),
                ty: SqlType::Int,
            },
            ScopeCol {
                qualifier: vec!["S".into()],
                name: "B".into(),
                ty: SqlType::String,
            },
        ];
        let e = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        let (c, _) = Compiler {
            scope: &scope,
            agg: None,
        }
        .compile(&e)
        .map_err(|e| e.to_string())?;
        c.eval(row)
    }

    #[test]
    fn expressions_follow_sql_null_rules() {
        let row = [Value::Int(4), Value::Null];
        assert_eq!(eval("a * 2 + 1", &row).unwrap(), Value::Int(9));
        assert_eq!(
            eval("b IS NULL AND a > 3", &row).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(eval("b = 'x'", &row).unwrap(), Value::Null);
        assert_eq!(
            eval("CAST(a AS DOUBLE) / 8", &row).unwrap(),
            Value::Double(0.5)
        );
        assert_eq!(
            eval("CASE WHEN a > 3 THEN 'big' ELSE 'small' END", &row).unwrap(),
            Value::String("big".into())
        );
        assert_eq!(eval("a / 0", &row).unwrap(), Value::Null);
        assert_eq!(eval("a % 0", &row).unwrap(), Value::Null);
        assert_eq!(
            eval("'Clark' LIKE 'Cl%'", &row).unwrap(),
            Value::Boolean(true)
        );
        let e = eval("\n nope + 1", &row).unwrap_err();
        assert!(
            e.contains("line 2:2") && e.contains("unknown column NOPE"),
            "{e}"
        );
    }

    #[test]
    fn integer_division_edges_do_not_panic() {
        let min = [Value::Int(i32::MIN), Value::Null];
        assert_eq!(
            eval("a / -1", &min).unwrap_err(),
            "integer overflow",
            "i32::MIN / -1 does not fit"
        );
        assert_eq!(eval("a % -1", &min).unwrap(), Value::Int(0));
        assert_eq!(eval("a % 0", &min).unwrap(), Value::Null);
        let big = [Value::Int(-1), Value::Null];
        assert_eq!(
            eval(
                "CAST(-9223372036854775807 - 1 AS BIGINT) / CAST(a AS BIGINT)",
                &big
            )
            .unwrap_err(),
            "integer overflow"
        );
        assert_eq!(
            eval(
                "CAST(-9223372036854775807 - 1 AS BIGINT) % CAST(a AS BIGINT)",
                &big
            )
            .unwrap(),
            Value::BigInt(0)
        );
        assert_eq!(eval("CAST(a AS BIGINT) % 0", &big).unwrap(), Value::Null);
    }

    #[test]
    fn unknown_columns_name_their_position() {
        let row = [Value::Int(4), Value::Null];
        let e = eval("\n nope + 1", &row).unwrap_err();
        assert!(
            e.contains("line 2:2") && e.contains("unknown column NOPE"),
            "{e}"
        );
    }
}
