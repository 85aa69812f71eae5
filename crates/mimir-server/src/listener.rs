//! `server.*` and `tls.*`: how the orchestrator's port accepts connections
//! (connection limits; HTTPS with optional client certificates).

use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `server.*`: connection limits of the API port (API, dashboard, `/metrics`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// A new connection (TLS handshake included) must send a request's
    /// headers within this many milliseconds, and so must a keep-alive
    /// connection once the next request has begun. Defaults to 10000.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this many milliseconds
    /// is closed. Defaults to 60000.
    pub idle_timeout_ms: u64,
    /// Most connections open at once; at the cap the longest-idle one is
    /// closed for each new one (a warning says so, at most every 10 s).
    /// Defaults to 0: 4096, or fewer when the open-file limit leaves less.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_ms: mimir_http::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64,
            idle_timeout_ms: mimir_http::DEFAULT_IDLE_TIMEOUT.as_millis() as u64,
            max_connections: 0,
        }
    }
}

impl ServerConfig {
    /// The limits, checked; errors name the key.
    pub fn limits(&self) -> Result<mimir_http::Limits, ConfigError> {
        for (key, ms) in [
            ("server.headerReadTimeoutMs", self.header_read_timeout_ms),
            ("server.idleTimeoutMs", self.idle_timeout_ms),
        ] {
            if ms < 100 {
                return Err(ConfigError::new(format!("{key} must be at least 100")));
            }
        }
        Ok(mimir_http::Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
        })
    }
}

/// `tls.*`: serve the API, the dashboard and `/metrics` over HTTPS. Off
/// (plain HTTP) while `certFile` and `keyFile` are empty.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM certificate chain of the server, its own certificate first. Re-read
    /// when it or the key changes. Defaults to empty (TLS off).
    pub cert_file: PathBuf,
    /// PEM private key of that certificate. Defaults to empty.
    pub key_file: PathBuf,
    /// PEM CA that signed `certFile`, which local workers and `metrics
    /// install` trust. Defaults to `certFile` (right for a self-signed
    /// certificate, or a chain file that ends with its root).
    pub ca_file: PathBuf,
    /// PEM CA client certificates must be signed by (mutual TLS for workers).
    /// Defaults to empty: no client certificates asked for.
    pub client_ca_file: PathBuf,
    /// With `clientCaFile`: `required` refuses any client without a valid
    /// certificate during the handshake (browsers, curl and Prometheus then
    /// need one too); `optional` serves clients without one, verifies one
    /// that is presented, and the worker protocol still requires one.
    /// Defaults to `required`.
    pub client_auth: String,
    /// Client certificate local workers present when `clientCaFile` is set.
    /// Defaults to empty.
    pub worker_cert_file: PathBuf,
    /// Its private key. Defaults to empty.
    pub worker_key_file: PathBuf,
}

/// A checked `tls.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTls {
    /// What the listener loads.
    pub server: mimir_http::TlsSettings,
    /// The CA local workers trust.
    pub ca_file: PathBuf,
    /// The client certificate and key of local workers, if any.
    pub worker_identity: Option<(PathBuf, PathBuf)>,
}

impl TlsConfig {
    /// `None` when TLS is off; errors name the key.
    pub fn validate(&self) -> Result<Option<ValidTls>, ConfigError> {
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        let client_auth = if self.client_auth.is_empty() {
            mimir_http::ClientAuth::default()
        } else {
            self.client_auth
                .parse()
                .map_err(|e| ConfigError::new(format!("tls.clientAuth: {e}")))?
        };
        match (set(&self.cert_file), set(&self.key_file)) {
            (false, false) => {
                for (key, path) in [
                    ("tls.caFile", &self.ca_file),
                    ("tls.clientCaFile", &self.client_ca_file),
                    ("tls.workerCertFile", &self.worker_cert_file),
                    ("tls.workerKeyFile", &self.worker_key_file),
                ] {
                    if set(path) {
                        return Err(ConfigError::new(format!(
                            "{key} needs tls.certFile and tls.keyFile (TLS is off without them)"
                        )));
                    }
                }
                return Ok(None);
            }
            (true, true) => {}
            _ => {
                return Err(ConfigError::new(
                    "tls.certFile and tls.keyFile must be set together".into(),
                ));
            }
        }
        if set(&self.worker_cert_file) != set(&self.worker_key_file) {
            return Err(ConfigError::new(
                "tls.workerCertFile and tls.workerKeyFile must be set together".into(),
            ));
        }
        let ca_file = if set(&self.ca_file) {
            self.ca_file.clone()
        } else {
            self.cert_file.clone()
        };
        Ok(Some(ValidTls {
            server: mimir_http::TlsSettings {
                cert_file: self.cert_file.clone(),
                key_file: self.key_file.clone(),
                client_ca_file: set(&self.client_ca_file).then(|| self.client_ca_file.clone()),
                client_auth,
            },
            ca_file,
            worker_identity: set(&self.worker_cert_file)
                .then(|| (self.worker_cert_file.clone(), self.worker_key_file.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn tls_is_off_by_default_and_half_a_pair_is_refused_by_name() {
        assert_eq!(Config::default().tls.validate().expect("valid"), None);
        let config = Config::from_yaml("tls:\n  certFile: /x.crt\n").expect("parses");
        let error = config.tls.validate().expect_err("half a pair");
        assert!(error.to_string().contains("tls.keyFile"), "{error}");
        let config = Config::from_yaml("tls:\n  clientCaFile: /ca.crt\n").expect("parses");
        let error = config.tls.validate().expect_err("client CA without TLS");
        assert!(error.to_string().contains("tls.clientCaFile"), "{error}");
        let config = Config::from_yaml(
            "tls:\n  certFile: /x.crt\n  keyFile: /x.key\n  clientAuth: sometimes\n",
        )
        .expect("parses");
        let error = config.tls.validate().expect_err("bad mode");
        assert!(error.to_string().contains("tls.clientAuth"), "{error}");
    }

    #[test]
    fn the_ca_local_workers_trust_defaults_to_the_certificate() {
        let config =
            Config::from_yaml("tls:\n  certFile: /x.crt\n  keyFile: /x.key\n").expect("parses");
        let tls = config.tls.validate().expect("valid").expect("on");
        assert_eq!(tls.ca_file, PathBuf::from("/x.crt"));
        assert_eq!(tls.server.client_auth, mimir_http::ClientAuth::Required);
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_tiny_timeouts() {
        let limits = ServerConfig::default().limits().expect("valid");
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        let config = Config::from_yaml("server:\n  idleTimeoutMs: 5\n").expect("parses");
        let error = config.server.limits().expect_err("too small");
        assert!(
            error.to_string().contains("server.idleTimeoutMs"),
            "{error}"
        );
        assert!(Config::from_yaml("server:\n  maxConnection: 5\n").is_err());
    }
}
