//! Metric values of the edge node model, their wire mapping, and report-by-exception deadbands.

use super::error::SparkplugError;
use super::payload::{metric, DataType};

/// A scalar metric value (24 bytes). Which variant a metric holds follows its [`DataType`]:
///
/// | data type | variant | wire field |
/// |---|---|---|
/// | Int8, Int16, Int32 | `Int` | `int_value`, two's complement sign-extended to 32 bits |
/// | Int64 | `Int` | `long_value`, two's complement |
/// | UInt8, UInt16, UInt32 | `UInt` | `int_value` |
/// | UInt64, DateTime (ms since the epoch) | `UInt` | `long_value` |
/// | Float / Double | `Float` / `Double` | `float_value` / `double_value` |
/// | Boolean | `Bool` | `boolean_value` |
/// | String, Text, UUID | `Text` | `string_value` |
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Text(Box<str>),
}

impl Value {
    /// The initial value for a metric of type `datatype` (zero, false, empty), or an error for a data type the
    /// edge node model does not simulate (arrays, data sets, templates, bytes, files, property sets).
    pub fn zero(datatype: DataType) -> Result<Value, SparkplugError> {
        Ok(match datatype {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Value::Int(0),
            DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::DateTime => Value::UInt(0),
            DataType::Float => Value::Float(0.0),
            DataType::Double => Value::Double(0.0),
            DataType::Boolean => Value::Bool(false),
            DataType::String | DataType::Text | DataType::Uuid => Value::Text(Box::from("")),
            other => return Err(SparkplugError::UnsupportedDataType(other)),
        })
    }

    /// Check that this value is representable as `datatype` (variant and range).
    pub fn check(&self, datatype: DataType) -> Result<(), SparkplugError> {
        let ok = match (datatype, self) {
            (DataType::Int8, Value::Int(v)) => i8::try_from(*v).is_ok(),
            (DataType::Int16, Value::Int(v)) => i16::try_from(*v).is_ok(),
            (DataType::Int32, Value::Int(v)) => i32::try_from(*v).is_ok(),
            (DataType::Int64, Value::Int(_)) => true,
            (DataType::UInt8, Value::UInt(v)) => u8::try_from(*v).is_ok(),
            (DataType::UInt16, Value::UInt(v)) => u16::try_from(*v).is_ok(),
            (DataType::UInt32, Value::UInt(v)) => u32::try_from(*v).is_ok(),
            (DataType::UInt64 | DataType::DateTime, Value::UInt(_)) => true,
            (DataType::Float, Value::Float(_)) => true,
            (DataType::Double, Value::Double(_)) => true,
            (DataType::Boolean, Value::Bool(_)) => true,
            (DataType::String | DataType::Text | DataType::Uuid, Value::Text(_)) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(SparkplugError::ValueMismatch(datatype))
        }
    }

    /// The wire value for a value already [`check`](Value::check)ed against `datatype`.
    pub fn to_wire(&self, datatype: DataType) -> metric::Value {
        match *self {
            Value::Bool(b) => metric::Value::BooleanValue(b),
            Value::Int(v) => match datatype {
                DataType::Int64 => metric::Value::LongValue(v as u64),
                _ => metric::Value::IntValue(v as i32 as u32),
            },
            Value::UInt(v) => match datatype {
                DataType::UInt64 | DataType::DateTime => metric::Value::LongValue(v),
                _ => metric::Value::IntValue(v as u32),
            },
            Value::Float(v) => metric::Value::FloatValue(v),
            Value::Double(v) => metric::Value::DoubleValue(v),
            Value::Text(ref s) => metric::Value::StringValue(String::from(&**s)),
        }
    }

    /// Read a wire value as `datatype`. Narrow signed types are read by truncation, so both sign-extended
    /// and zero-extended encodings of negative Int8/Int16 decode to the same value.
    pub fn from_wire(datatype: DataType, wire: &metric::Value) -> Option<Value> {
        Some(match (datatype, wire) {
            (DataType::Int8, metric::Value::IntValue(v)) => Value::Int(i64::from(*v as i8)),
            (DataType::Int16, metric::Value::IntValue(v)) => Value::Int(i64::from(*v as i16)),
            (DataType::Int32, metric::Value::IntValue(v)) => Value::Int(i64::from(*v as i32)),
            (DataType::Int64, metric::Value::LongValue(v)) => Value::Int(*v as i64),
            (DataType::UInt8 | DataType::UInt16 | DataType::UInt32, metric::Value::IntValue(v)) => {
                Value::UInt(u64::from(*v))
            }
            (DataType::UInt64 | DataType::DateTime, metric::Value::LongValue(v)) => Value::UInt(*v),
            (DataType::Float, metric::Value::FloatValue(v)) => Value::Float(*v),
            (DataType::Double, metric::Value::DoubleValue(v)) => Value::Double(*v),
            (DataType::Boolean, metric::Value::BooleanValue(v)) => Value::Bool(*v),
            (DataType::String | DataType::Text | DataType::Uuid, metric::Value::StringValue(s)) => {
                Value::Text(Box::from(s.as_str()))
            }
            _ => return None,
        })
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            Value::Float(v) => Some(f64::from(v)),
            Value::Double(v) => Some(v),
            Value::Bool(_) | Value::Text(_) => None,
        }
    }

    /// Equality with floats compared bit for bit (a NaN equals the same NaN).
    fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }
}

/// When a new sample counts as a change worth reporting (report by exception).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Deadband {
    /// Any change is reported (floats compared bit for bit).
    #[default]
    Exact,
    /// Numeric values: reported when `|new - last reported| > band`. Other values: as `Exact`.
    Absolute(f64),
    /// Numeric values: reported when `|new - last| > percent / 100 * |last|` (any change when last is 0).
    /// Other values: as `Exact`.
    Percent(f64),
}

impl Deadband {
    /// Whether `new` differs from the last reported value `last` beyond the deadband. A change of variant, or
    /// between NaN and a number, always counts.
    pub fn exceeded(&self, last: &Value, new: &Value) -> bool {
        if last.same(new) {
            return false;
        }
        let band = match *self {
            Deadband::Exact => return true,
            Deadband::Absolute(band) => band,
            Deadband::Percent(percent) => match last.as_f64() {
                Some(l) => percent / 100.0 * l.abs(),
                None => return true,
            },
        };
        match (last.as_f64(), new.as_f64()) {
            (Some(l), Some(n)) if std::mem::discriminant(last) == std::mem::discriminant(new) => {
                let delta = (n - l).abs();
                // NaN on either side makes delta NaN: reported.
                delta.is_nan() || delta > band
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_small() {
        assert!(std::mem::size_of::<Value>() <= 24);
    }

    #[test]
    fn wire_round_trip_and_ranges() {
        let cases = [
            (DataType::Int8, Value::Int(-5)),
            (DataType::Int16, Value::Int(-300)),
            (DataType::Int32, Value::Int(i64::from(i32::MIN))),
            (DataType::Int64, Value::Int(i64::MIN)),
            (DataType::UInt8, Value::UInt(255)),
            (DataType::UInt32, Value::UInt(u64::from(u32::MAX))),
            (DataType::UInt64, Value::UInt(u64::MAX)),
            (DataType::DateTime, Value::UInt(1_700_000_000_000)),
            (DataType::Float, Value::Float(1.5)),
            (DataType::Double, Value::Double(-2.25)),
            (DataType::Boolean, Value::Bool(true)),
            (DataType::Text, Value::Text("hi".into())),
        ];
        for (t, v) in cases {
            v.check(t).unwrap();
            assert_eq!(Value::from_wire(t, &v.to_wire(t)), Some(v));
        }
        assert_eq!(
            Value::Int(-1).to_wire(DataType::Int8),
            metric::Value::IntValue(0xFFFF_FFFF)
        );
        // A zero-extended negative Int8 (0xFF) reads back as -1 too.
        assert_eq!(
            Value::from_wire(DataType::Int8, &metric::Value::IntValue(0xFF)),
            Some(Value::Int(-1))
        );
        assert!(Value::Int(128).check(DataType::Int8).is_err());
        assert!(Value::UInt(256).check(DataType::UInt8).is_err());
        assert!(Value::Double(1.0).check(DataType::Float).is_err());
        assert!(Value::zero(DataType::DataSet).is_err());
    }

    #[test]
    fn deadbands() {
        let d = Deadband::Absolute(0.5);
        assert!(!d.exceeded(&Value::Double(10.0), &Value::Double(10.4)));
        assert!(!d.exceeded(&Value::Double(10.0), &Value::Double(10.5)));
        assert!(d.exceeded(&Value::Double(10.0), &Value::Double(10.51)));
        assert!(d.exceeded(&Value::Double(10.0), &Value::Double(f64::NAN)));
        assert!(!d.exceeded(&Value::Double(f64::NAN), &Value::Double(f64::NAN)));
        assert!(d.exceeded(&Value::Bool(false), &Value::Bool(true)));
        let p = Deadband::Percent(10.0);
        assert!(!p.exceeded(&Value::Int(100), &Value::Int(110)));
        assert!(p.exceeded(&Value::Int(100), &Value::Int(111)));
        assert!(p.exceeded(&Value::Int(0), &Value::Int(1)));
        assert!(!Deadband::Exact.exceeded(&Value::UInt(3), &Value::UInt(3)));
        assert!(Deadband::Exact.exceeded(&Value::UInt(3), &Value::UInt(4)));
    }
}
