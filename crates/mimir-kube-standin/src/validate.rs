//! The checks the API server makes on a new Job before storing it (422 Invalid).

use k8s_openapi::api::batch::v1::Job;

use crate::resource::Kind;
use crate::status::ApiError;

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Whether `name` is a DNS-1123 label: 1 to 63 lowercase alphanumerics or '-', alphanumeric at both ends.
pub(crate) fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub(crate) fn job(job: &Job) -> Result<(), ApiError> {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let invalid =
        |field: &str, message: String| ApiError::invalid(Kind::Job, name, field, &message);
    if name.is_empty() {
        return Err(invalid(
            "metadata.name",
            "Required value: name or generateName is required".to_owned(),
        ));
    }
    if !is_dns1123_label(name) {
        let message = if name.len() > 63 {
            format!("Invalid value: {name:?}: must be no more than 63 characters")
        } else {
            format!("Invalid value: {name:?}: {DNS1123_LABEL}")
        };
        return Err(invalid("metadata.name", message));
    }
    for (k, v) in job.metadata.labels.iter().flatten() {
        if let Err(message) = crate::selector::LabelSelector::parse(&format!("{k}={v}")) {
            return Err(invalid(
                "metadata.labels",
                format!("Invalid value: {message}"),
            ));
        }
    }
    let Some(spec) = &job.spec else {
        return Err(invalid(
            "spec.template.spec.containers",
            "Required value".to_owned(),
        ));
    };
    for (field, value) in [
        ("spec.activeDeadlineSeconds", spec.active_deadline_seconds),
        ("spec.backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "spec.ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(invalid(
                field,
                format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    value.unwrap_or_default()
                ),
            ));
        }
    }
    if spec.active_deadline_seconds == Some(0) {
        return Err(invalid(
            "spec.activeDeadlineSeconds",
            "Invalid value: 0: must be greater than 0".to_owned(),
        ));
    }
    for (k, v) in spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .into_iter()
        .flatten()
    {
        if let Err(message) = crate::selector::LabelSelector::parse(&format!("{k}={v}")) {
            return Err(invalid(
                "spec.template.metadata.labels",
                format!("Invalid value: {message}"),
            ));
        }
    }
    let Some(pod) = &spec.template.spec else {
        return Err(invalid(
            "spec.template.spec.containers",
            "Required value".to_owned(),
        ));
    };
    if pod.containers.is_empty() {
        return Err(invalid(
            "spec.template.spec.containers",
            "Required value".to_owned(),
        ));
    }
    for (i, c) in pod.containers.iter().enumerate() {
        if !is_dns1123_label(&c.name) {
            return Err(invalid(
                &format!("spec.template.spec.containers[{i}].name"),
                format!("Invalid value: {:?}: {DNS1123_LABEL}", c.name),
            ));
        }
        if c.image.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                &format!("spec.template.spec.containers[{i}].image"),
                "Required value".to_owned(),
            ));
        }
    }
    match pod.restart_policy.as_deref() {
        Some("Never" | "OnFailure") => {}
        other => {
            return Err(invalid(
                "spec.template.spec.restartPolicy",
                format!(
                    "Unsupported value: {:?}: supported values: \"OnFailure\", \"Never\"",
                    other.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels_are_lowercase_alphanumerics_and_dashes_up_to_63() {
        assert!(is_dns1123_label("mimir-task-0a1b"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_label("Upper"));
        assert!(!is_dns1123_label("-lead"));
        assert!(!is_dns1123_label("trail-"));
        assert!(!is_dns1123_label("dot.ted"));
        assert!(!is_dns1123_label(""));
    }
}
