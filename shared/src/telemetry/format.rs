//! The log's line format: one JSON object per event, fields at the top level.
//!
//! tracing-subscriber's JSON format writes every field value as a string or
//! a number, but CloudWatch's Embedded Metric Format needs its `_aws` member
//! to be an object. So the line is written here: the field named
//! [`EMF_FIELD`] carries JSON text made by this crate and goes into the line
//! as that JSON; every other field is a string, a number or a boolean.

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The field whose text is embedded as JSON: EMF's metadata member.
pub const EMF_FIELD: &str = "_aws";

/// Formats each event as `{"timestamp", "level", <fields in order>}`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields(vec![
            ("timestamp", Value::String(timestamp)),
            ("level", Value::from(event.metadata().level().as_str())),
        ]);
        event.record(&mut fields);
        let mut line = Vec::with_capacity(512);
        let mut serializer = serde_json::Serializer::new(&mut line);
        let written = serializer
            .serialize_map(Some(fields.0.len()))
            .and_then(|mut map| {
                for (name, value) in &fields.0 {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            });
        written.map_err(|_| fmt::Error)?;
        // serde_json writes UTF-8 only.
        let line = std::str::from_utf8(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// An event's fields as JSON values, in the order they were given.
struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = if field.name() == EMF_FIELD {
            // Made by this crate from serde_json; should it ever not parse,
            // the line keeps it as text rather than lose it.
            serde_json::from_str(value).unwrap_or_else(|_| Value::from(value))
        } else {
            Value::from(value)
        };
        self.0.push((field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name(), Value::String(format!("{value:?}"))));
    }
}
