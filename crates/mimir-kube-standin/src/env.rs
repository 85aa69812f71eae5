//! The container environment the kubelet would build: plain values, secret keys, and the
//! pod's own fields.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;

/// The first container's environment in order (`envFrom` first, then `env`), or the
/// message of the `CreateContainerConfigError` the kubelet would report.
pub(crate) fn resolve(
    pod: &Pod,
    secrets: &HashMap<(String, String), BTreeMap<String, String>>,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(container) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
        return Ok(Vec::new());
    };
    let mut env = Vec::new();
    for from in container.env_from.iter().flatten() {
        if let Some(secret_ref) = &from.secret_ref {
            match secrets.get(&(ns.clone(), secret_ref.name.clone())) {
                Some(secret) => {
                    let prefix = from.prefix.clone().unwrap_or_default();
                    for (k, v) in secret {
                        env.push((format!("{prefix}{k}"), v.clone()));
                    }
                }
                None if secret_ref.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", secret_ref.name)),
            }
        } else if let Some(config_map) = &from.config_map_ref
            && config_map.optional != Some(true)
        {
            return Err(format!("configmap \"{}\" not found", config_map.name));
        }
    }
    for var in container.env.iter().flatten() {
        let Some(source) = &var.value_from else {
            env.push((var.name.clone(), var.value.clone().unwrap_or_default()));
            continue;
        };
        if let Some(secret_key) = &source.secret_key_ref {
            let Some(secret) = secrets.get(&(ns.clone(), secret_key.name.clone())) else {
                if secret_key.optional == Some(true) {
                    continue;
                }
                return Err(format!("secret \"{}\" not found", secret_key.name));
            };
            match secret.get(&secret_key.key) {
                Some(value) => env.push((var.name.clone(), value.clone())),
                None if secret_key.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "couldn't find key {} in Secret {ns}/{}",
                        secret_key.key, secret_key.name
                    ));
                }
            }
        } else if let Some(field) = &source.field_ref {
            env.push((var.name.clone(), field_value(pod, &field.field_path)?));
        } else if let Some(config_map) = &source.config_map_key_ref {
            if config_map.optional != Some(true) {
                return Err(format!("configmap \"{}\" not found", config_map.name));
            }
        } else {
            // resourceFieldRef: no node resources to report.
            env.push((var.name.clone(), String::new()));
        }
    }
    Ok(env)
}

fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIP" => Some("10.244.0.2".to_owned()),
        _ => {
            let label = path
                .strip_prefix("metadata.labels['")
                .or_else(|| path.strip_prefix("metadata.annotations['"))
                .and_then(|rest| rest.strip_suffix("']"));
            match label {
                Some(k) if path.starts_with("metadata.labels") => {
                    meta.labels.as_ref().and_then(|l| l.get(k).cloned())
                }
                Some(k) => meta.annotations.as_ref().and_then(|a| a.get(k).cloned()),
                None => return Err(format!("unsupported fieldRef {path:?}")),
            }
        }
    };
    Ok(value.unwrap_or_default())
}
