//! Driver-neutral parameters and columns. A parameter keeps its SQL type even when it is
//! NULL (PostgreSQL types every bound parameter); a column read back is decoded by
//! [`FromValue`], the same for both backends.

use crate::catalog::{CatalogError, CatalogResult};
use crate::domain::{MediaType, ParseError, Sha256Hex};

/// One parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
    /// A list parameter (see `Dialect::list`).
    List(Vec<String>),
    /// A column that read as NULL without a type (SQLite).
    Null,
}

impl Value {
    /// A list of texts, bound as one parameter.
    pub fn list<T: AsRef<str>>(items: &[T]) -> Self {
        Value::List(items.iter().map(|i| i.as_ref().to_owned()).collect())
    }
}

/// What can be bound as a parameter. Unsigned sizes are checked against the catalog's
/// `bigint` here, the last line behind the checks at the edge: a size that slipped through is
/// refused, never stored negative.
pub trait IntoValue {
    fn into_value(self) -> CatalogResult<Value>;
}

impl IntoValue for Value {
    fn into_value(self) -> CatalogResult<Value> {
        Ok(self)
    }
}

macro_rules! infallible {
    ($($ty:ty => |$v:ident| $make:expr),* $(,)?) => {
        $(impl IntoValue for $ty {
            fn into_value(self) -> CatalogResult<Value> {
                let $v = self;
                Ok($make)
            }
        })*
    };
}

infallible! {
    i64 => |v| Value::Int(Some(v)),
    Option<i64> => |v| Value::Int(v),
    u32 => |v| Value::Int(Some(i64::from(v))),
    Option<u32> => |v| Value::Int(v.map(i64::from)),
    bool => |v| Value::Bool(Some(v)),
    &str => |v| Value::Text(Some(v.to_owned())),
    String => |v| Value::Text(Some(v)),
    &String => |v| Value::Text(Some(v.clone())),
    Option<&str> => |v| Value::Text(v.map(str::to_owned)),
    Option<String> => |v| Value::Text(v),
    &Option<String> => |v| Value::Text(v.clone()),
    &Sha256Hex => |v| Value::Text(Some(v.as_str().to_owned())),
    Option<&Sha256Hex> => |v| Value::Text(v.map(|h| h.as_str().to_owned())),
    &[u8] => |v| Value::Bytes(Some(v.to_vec())),
    Option<&[u8]> => |v| Value::Bytes(v.map(<[u8]>::to_vec)),
}

/// A size or count as its `bigint` column holds it.
pub fn column_size(value: u64) -> CatalogResult<i64> {
    i64::try_from(value).map_err(|_| CatalogError::OutOfRange(format!("{value} is larger than a catalog integer")))
}

impl IntoValue for u64 {
    fn into_value(self) -> CatalogResult<Value> {
        Ok(Value::Int(Some(column_size(self)?)))
    }
}

impl IntoValue for Option<u64> {
    fn into_value(self) -> CatalogResult<Value> {
        Ok(Value::Int(self.map(column_size).transpose()?))
    }
}

/// One result row, columns in `select` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `index`, decoded; a column of the wrong type is a schema error.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, CatalogError> {
        let value = self.0.get(index).ok_or_else(|| CatalogError::Schema(format!("no column {index}")))?;
        T::from_value(value).map_err(|why| CatalogError::Schema(format!("column {index}: {why}")))
    }

    /// Column `index`, decoded by moving its text or bytes out (no copy); the column reads as
    /// NULL afterwards. For the decoders of rows read by the page, where copies add up.
    pub fn take<T: FromValue>(&mut self, index: usize) -> Result<T, CatalogError> {
        let value = self.0.get_mut(index).ok_or_else(|| CatalogError::Schema(format!("no column {index}")))?;
        T::from_owned(std::mem::replace(value, Value::Null))
            .map_err(|why| CatalogError::Schema(format!("column {index}: {why}")))
    }
}

/// A Rust value a column decodes into.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, ParseError>;

    /// The same from a column the row gives up: text and bytes are moved, not copied.
    fn from_owned(value: Value) -> Result<Self, ParseError> {
        Self::from_value(&value)
    }
}

/// A text column, borrowed.
fn text(value: &Value) -> Result<&str, ParseError> {
    match value {
        Value::Text(Some(v)) => Ok(v),
        other => Err(ParseError::new(format!("expected text, found {other:?}"))),
    }
}

fn null(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Int(None) | Value::Text(None) | Value::Bytes(None) | Value::Bool(None))
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        if null(value) { Ok(None) } else { T::from_value(value).map(Some) }
    }

    fn from_owned(value: Value) -> Result<Self, ParseError> {
        if null(&value) { Ok(None) } else { T::from_owned(value).map(Some) }
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        match value {
            Value::Int(Some(v)) => Ok(*v),
            Value::Bool(Some(b)) => Ok(i64::from(*b)),
            other => Err(ParseError::new(format!("expected an integer, found {other:?}"))),
        }
    }
}

impl FromValue for u64 {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        let v = i64::from_value(value)?;
        u64::try_from(v).map_err(|_| ParseError::new(format!("expected a size, found {v}")))
    }
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        let v = i64::from_value(value)?;
        u32::try_from(v).map_err(|_| ParseError::new(format!("expected a small count, found {v}")))
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        match value {
            Value::Bool(Some(b)) => Ok(*b),
            // SQLite keeps booleans as integers
            Value::Int(Some(v)) => Ok(*v != 0),
            other => Err(ParseError::new(format!("expected a boolean, found {other:?}"))),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        text(value).map(str::to_owned)
    }

    fn from_owned(value: Value) -> Result<Self, ParseError> {
        match value {
            Value::Text(Some(v)) => Ok(v),
            other => Self::from_value(&other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        match value {
            Value::Bytes(Some(v)) => Ok(v.clone()),
            Value::Text(Some(v)) => Ok(v.clone().into_bytes()),
            other => Err(ParseError::new(format!("expected bytes, found {other:?}"))),
        }
    }
}

impl FromValue for Sha256Hex {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        Sha256Hex::parse(text(value)?)
    }

    fn from_owned(value: Value) -> Result<Self, ParseError> {
        Sha256Hex::parse_owned(String::from_owned(value)?)
    }
}

impl FromValue for MediaType {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        MediaType::parse(text(value)?)
    }
}

impl FromValue for serde_json::Value {
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        serde_json::from_str(text(value)?).map_err(|e| ParseError::new(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_decode_the_same_from_either_backend() {
        let row = Row(vec![Value::Int(Some(1)), Value::Bool(Some(true)), Value::Null, Value::Text(None)]);
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert!(row.get::<bool>(0).unwrap(), "SQLite's 1 is true");
        assert!(row.get::<bool>(1).unwrap());
        assert_eq!(row.get::<Option<String>>(2).unwrap(), None);
        assert_eq!(row.get::<Option<i64>>(3).unwrap(), None);
        assert!(row.get::<String>(2).is_err());
        assert!(row.get::<u64>(4).is_err());
        assert!(Row(vec![Value::Int(Some(-1))]).get::<u64>(0).is_err(), "sizes are never negative");
    }

    #[test]
    fn a_taken_column_decodes_as_a_read_one_and_is_null_after() {
        let hash = Sha256Hex::of(b"x");
        let mut row = Row(vec![
            Value::Text(Some(hash.as_str().into())),
            Value::Text(Some("{\"kind\": \"image\"}".into())),
            Value::Text(None),
            Value::Text(Some("ABC".into())),
        ]);
        assert_eq!(row.get::<Sha256Hex>(0).unwrap(), hash);
        assert_eq!(row.take::<Sha256Hex>(0).unwrap(), hash);
        assert!(row.take::<Option<Sha256Hex>>(0).unwrap().is_none(), "taken: NULL after");
        assert_eq!(row.take::<serde_json::Value>(1).unwrap(), serde_json::json!({"kind": "image"}));
        assert_eq!(row.take::<Option<String>>(2).unwrap(), None);
        assert!(row.take::<Sha256Hex>(3).is_err(), "an owned text is checked like a borrowed one");
        assert!(row.take::<String>(9).is_err());
    }
}
