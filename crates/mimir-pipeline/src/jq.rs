//! jq programs, compiled and run with jaq.
//!
//! Programs get jq's standard library except `env` and `$ENV`, which would
//! hand pipeline authors the worker's environment (and its secrets), and
//! `input`/`inputs`, which have no stream to read from here. `halt` ends the
//! program with an error instead of the process.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data::JustLut};
use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

type Data = JustLut<Val>;
/// A compiled program; `Send` and `Sync`, so it can be kept and shared.
pub(crate) type Filter = jaq_core::Filter<Data>;

/// Most values a program may output, so `repeat(1)` fails instead of
/// exhausting memory.
pub const MAX_OUTPUTS: usize = 1_000_000;

/// Filters withheld from programs; see the module documentation.
const WITHHELD: &[&str] = &["env", "input", "inputs"];

/// Compiles `program`, or explains why it does not compile.
pub(crate) fn compile(program: &str) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !WITHHELD.contains(name));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let file = File {
        code: program,
        path: (),
    };
    let modules = loader
        .load(&arena, file)
        .map_err(|errors| describe_load_errors(program, errors))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let mut messages = Vec::new();
            for (_file, undefined) in errors {
                for (name, what) in undefined {
                    let at = jaq_core::load::span(program, name).start;
                    messages.push(format!(
                        "undefined {} \"{name}\" at offset {at}",
                        what.as_str()
                    ));
                }
            }
            messages.join("; ")
        })
}

fn describe_load_errors(program: &str, errors: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let at = |part: &str| {
        let offset = jaq_core::load::span(program, part).start;
        if part.is_empty() {
            format!("at the end (offset {offset})")
        } else {
            format!("at offset {offset}")
        }
    };
    let mut messages = Vec::new();
    for (_file, error) in errors {
        match error {
            Error::Io(items) => {
                for (path, reason) in items {
                    messages.push(format!("cannot load module \"{path}\": {reason}"));
                }
            }
            Error::Lex(items) => {
                for (expected, part) in items {
                    messages.push(format!("expected {} {}", expected.as_str(), at(part)));
                }
            }
            Error::Parse(items) => {
                for (expected, part) in items {
                    messages.push(format!("expected {} {}", expected.as_str(), at(part)));
                }
            }
        }
    }
    messages.join("; ")
}

/// Runs `filter` on `input`: no output gives null, one gives that value,
/// several give an array. `stop` is polled between outputs so a cancelled
/// run does not keep a thread busy.
pub(crate) fn run(
    filter: &Filter,
    input: &Value,
    stop: &dyn Fn() -> bool,
) -> Result<Value, String> {
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    let mut outputs = Vec::new();
    for output in filter.id.run((ctx, to_val(input))) {
        outputs.push(to_json(&output.map_err(describe)?));
        if outputs.len() > MAX_OUTPUTS {
            return Err(format!(
                "the program produced more than {MAX_OUTPUTS} values"
            ));
        }
        if stop() {
            return Err("cancelled".to_string());
        }
    }
    Ok(match outputs.len() {
        0 => Value::Null,
        1 => outputs.pop().unwrap_or(Value::Null),
        _ => Value::Array(outputs),
    })
}

/// Whether the first output of `filter` on `input` is truthy (neither
/// `false` nor `null`), and that output; `None` when there is none. The
/// rest of the program does not run.
pub(crate) fn first(filter: &Filter, input: &Value) -> Result<Option<Value>, String> {
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    match filter.id.run((ctx, to_val(input))).next() {
        None => Ok(None),
        Some(output) => Ok(Some(to_json(&output.map_err(describe)?))),
    }
}

/// An error or `halt` as a sentence.
fn describe(exception: jaq_core::Exn<'_, Val>) -> String {
    match exception.get_err() {
        // `error("text")` reads better unquoted, as jq prints it.
        Ok(error) => match error.into_val() {
            Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
            other => other.to_string(),
        },
        Err(exception) => match exception.get_halt() {
            Ok(code) => format!("the program halted with exit code {code}"),
            Err(_) => "the program stopped unexpectedly".to_string(),
        },
    }
}

/// A JSON value as jaq sees it.
pub(crate) fn to_val(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Num(Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Val::Num(Num::from_integral(u))
            } else {
                Val::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(map) => {
            let mut object = jaq_json::Map::default();
            for (key, item) in map {
                object.insert(Val::from(key.clone()), to_val(item));
            }
            Val::obj(object)
        }
    }
}

/// A jaq value as JSON. Like jq, NaN becomes null and infinities the largest
/// finite numbers; byte strings are read as UTF-8 and non-string object keys
/// as their JSON text.
pub(crate) fn to_json(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number(n),
        Val::TStr(bytes) | Val::BStr(bytes) => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(object) => {
            let mut map = Map::new();
            for (key, item) in object.iter() {
                let key = match key {
                    Val::TStr(bytes) | Val::BStr(bytes) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    other => other.to_string(),
                };
                map.insert(key, to_json(item));
            }
            Value::Object(map)
        }
    }
}

fn number(n: &Num) -> Value {
    let float = |f: f64| {
        if f.is_nan() {
            Value::Null
        } else {
            let finite = f.clamp(f64::MIN, f64::MAX);
            Number::from_f64(finite).map_or(Value::Null, Value::Number)
        }
    };
    match n {
        Num::Int(i) => Value::from(*i),
        Num::Float(f) => float(*f),
        // Big integers and decimals keep their digits when JSON numbers can.
        other => {
            let text = other.to_string();
            match serde_json::from_str::<Number>(&text) {
                Ok(number) => Value::Number(number),
                Err(_) => float(text.parse().unwrap_or(f64::NAN)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(program: &str, input: Value) -> Result<Value, String> {
        let filter = compile(program)?;
        run(&filter, &input, &|| false)
    }

    #[test]
    fn outputs_become_null_one_value_or_an_array() {
        assert_eq!(eval("empty", json!(1)).unwrap(), Value::Null);
        assert_eq!(eval(".a + 1", json!({"a": 1})).unwrap(), json!(2));
        assert_eq!(
            eval(".[] | .id", json!([{"id": 1}, {"id": 2}])).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn standard_library_and_values_round_trip() {
        let input = json!({"rows": [{"n": 3, "s": "b"}, {"n": 1.5, "s": "a"}], "big": 9007199254740993_u64, "t": true, "z": null});
        assert_eq!(eval(".", input.clone()).unwrap(), input);
        assert_eq!(
            eval(
                "[.rows[] | select(.n > 2) | .s | ascii_upcase]",
                input.clone()
            )
            .unwrap(),
            json!(["B"])
        );
        assert_eq!(
            eval(".rows | sort_by(.s) | map(.n)", input.clone()).unwrap(),
            json!([1.5, 3])
        );
        assert_eq!(
            eval("[1,2] | map(. * 10) | add", json!(null)).unwrap(),
            json!(30)
        );
        assert_eq!(eval("nan", json!(null)).unwrap(), Value::Null);
        assert_eq!(
            eval("{(1|tostring): 2}", json!(null)).unwrap(),
            json!({"1": 2})
        );
    }

    #[test]
    fn compile_errors_say_what_and_where() {
        let err = compile(".[").err().unwrap_or_default();
        assert!(err.starts_with("expected"), "{err}");
        let err = compile("nosuchfilter(1)").err().unwrap_or_default();
        assert!(err.contains("undefined filter \"nosuchfilter\""), "{err}");
    }

    #[test]
    fn the_environment_is_not_reachable() {
        assert!(compile("env").is_err());
        assert!(compile("$ENV").is_err());
        assert!(compile("input").is_err());
    }

    #[test]
    fn runtime_errors_and_halt_are_errors() {
        let err = eval(".a", json!(1)).unwrap_err();
        assert!(err.contains("cannot index"), "{err}");
        let err = eval("error(\"boom\")", json!(null)).unwrap_err();
        assert_eq!(err, "boom");
        let err = eval("error({code: 1})", json!(null)).unwrap_err();
        assert_eq!(err, "{\"code\":1}");
        let err = eval("halt", json!(null)).unwrap_err();
        assert!(err.contains("halted"), "{err}");
        let err = eval("repeat(1)", json!(null)).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn first_stops_after_the_first_output() {
        let filter = compile("false, repeat(1)").unwrap();
        assert_eq!(first(&filter, &json!(null)).unwrap(), Some(json!(false)));
        let filter = compile("empty").unwrap();
        assert_eq!(first(&filter, &json!(null)).unwrap(), None);
        let filter = compile(".a.b").unwrap();
        assert!(first(&filter, &json!({"a": 1})).is_err());
    }

    #[test]
    fn stops_when_asked() {
        let filter = compile("repeat(1)").unwrap();
        assert_eq!(
            run(&filter, &json!(null), &|| true).unwrap_err(),
            "cancelled"
        );
    }
}
