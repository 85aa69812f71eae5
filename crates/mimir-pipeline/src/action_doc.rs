//! What an action takes and returns, as `GET /api/plugins` and
//! `mimir-aip plugin list` show it.
//!
//! Each action keeps its table next to its code and reads its parameter names
//! from it ([`crate::params::reject_unknown`] takes the table), and the
//! registry's tests check every table against the action's own `check`: a
//! required parameter left out, an unknown one, or a value of the wrong type
//! must be refused. So the table cannot drift from what the action accepts.

use serde::Serialize;

/// An action's documentation.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionDoc {
    /// One sentence: what the action does.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub summary: &'static str,
    /// Every parameter it accepts; any other is refused.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<ParamDoc>))]
    pub parameters: &'static [ParamDoc],
    /// What it returns (R, the step's context entry without `output`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub returns: &'static str,
}

/// One parameter of an action.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamDoc {
    /// Its name in the step's `parameters`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: &'static str,
    /// The JSON type it takes (after references are resolved).
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Whether a step must give it.
    pub required: bool,
    /// What applies when it is not given, when something does.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub default: Option<&'static str>,
    /// What it means.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub description: &'static str,
}

impl AsRef<str> for ParamDoc {
    fn as_ref(&self) -> &str {
        self.name
    }
}

/// The JSON type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number of 0 or more.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An object.
    Object,
    /// An array.
    Array,
    /// Any JSON value.
    Any,
}

impl ParamType {
    /// The name as the table shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Object => "object",
            ParamType::Array => "array",
            ParamType::Any => "any",
        }
    }
}

impl ParamDoc {
    /// A parameter a step must give.
    pub const fn required(
        name: &'static str,
        kind: ParamType,
        description: &'static str,
    ) -> ParamDoc {
        ParamDoc {
            name,
            kind,
            required: true,
            default: None,
            description,
        }
    }

    /// A parameter a step may leave out, and what applies then (`None`:
    /// nothing, as the description says).
    pub const fn optional(
        name: &'static str,
        kind: ParamType,
        default: Option<&'static str>,
        description: &'static str,
    ) -> ParamDoc {
        ParamDoc {
            name,
            kind,
            required: false,
            default,
            description,
        }
    }
}
