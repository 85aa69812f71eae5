//! TLS for a listener: rustls with the ring provider, the certificate and key
//! re-read when their files change (checked at most once a second; a pair
//! that does not load keeps the previous one and logs why), and optional
//! client certificates verified against a CA.

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are looked at, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Whether clients must present a certificate when a client CA is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client without a certificate signed by the client CA is refused
    /// during the handshake.
    #[default]
    Required,
    /// A client may connect without a certificate; one it presents must be
    /// signed by the client CA. Requests carry a [`PeerCertificate`] when it did.
    Optional,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            _ => Err(format!(
                "{s:?} is not a client auth mode; use required or optional"
            )),
        }
    }
}

/// Files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates client certificates must be signed by; `None`
    /// asks clients for no certificate.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required when `client_ca_file` is set.
    pub client_auth: ClientAuth,
}

/// A TLS file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or holds no usable PEM.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The certificate and key do not belong together, or rustls refused them.
    #[error("{} and {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        message: String,
    },
}

/// Marks a request that came with a client certificate the client CA
/// verified (an extension of the request); holds that certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(Arc<[u8]>);

impl PeerCertificate {
    pub(crate) fn new(der: &[u8]) -> PeerCertificate {
        PeerCertificate(der.into())
    }

    /// The certificate, DER encoded.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

/// Marks a request whose client presented no certificate where the listener
/// asks for one but lets it in without (`ClientAuth::Optional`): routes meant
/// for certified clients only refuse such requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoClientCertificate;

/// What a listener needs to speak TLS.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    optional_client_certs: bool,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

impl TlsServer {
    /// Loads the files (errors name the one at fault) and builds the server.
    pub fn new(settings: &TlsSettings) -> Result<TlsServer, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(ReloadingResolver::new(
            &settings.cert_file,
            &settings.key_file,
            provider.clone(),
        )?);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| pair_error(settings, e))?;
        let builder = match &settings.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        path: path.clone(),
                        message: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if settings.client_auth == ClientAuth::Optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier.build().map_err(|e| TlsError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            optional_client_certs: settings.client_ca_file.is_some()
                && settings.client_auth == ClientAuth::Optional,
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Whether clients may connect without the certificate asked for.
    pub(crate) fn optional_client_certs(&self) -> bool {
        self.optional_client_certs
    }
}

fn pair_error(settings: &TlsSettings, error: impl std::fmt::Display) -> TlsError {
    TlsError::Pair {
        cert: settings.cert_file.clone(),
        key: settings.key_file.clone(),
        message: error.to_string(),
    }
}

/// Reads every PEM certificate of `path`.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(pem_message(e)))?
        .collect();
    let certs = certs.map_err(|e| file_error(pem_message(e)))?;
    if certs.is_empty() {
        return Err(file_error("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn pem_message(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM item of that kind".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Loads a certificate chain and its key, checking that they match.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert)?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.to_path_buf(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM private key".into(),
            other => pem_message(other),
        },
    })?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: match e {
            rustls::Error::InconsistentKeys(_) => {
                "the key does not belong to the certificate".into()
            }
            other => other.to_string(),
        },
    })
}

/// Checks that a client trusting `ca_file` accepts the certificate of
/// `cert_file` for `host` (a name or an IP address): what a local worker
/// will do. The error says why not.
pub fn check_trusted(cert_file: &Path, ca_file: &Path, host: &str) -> Result<(), String> {
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    let chain = read_certs(cert_file).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca_file).map_err(|e| e.to_string())? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What identifies a version of a file: replaced or rewritten, one of these changes.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// Serves the certificate of two files, re-read when either changes.
#[derive(Debug)]
pub(crate) struct ReloadingResolver {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
    checked: Instant,
}

impl ReloadingResolver {
    pub(crate) fn new(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingResolver, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let current = Arc::new(load_pair(cert, key, &provider)?);
        Ok(ReloadingResolver {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            state: Mutex::new(State {
                current,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair in force, re-read first when a second has passed since the
    /// last look and a file changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock();
        if state.checked.elapsed() < RELOAD_CHECK {
            return state.current.clone();
        }
        state.checked = Instant::now();
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps == state.stamps {
            return state.current.clone();
        }
        // Remember the new stamps even when loading fails, so a bad pair is
        // reported once, and loaded as soon as either file changes again.
        state.stamps = stamps;
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                state.current = Arc::new(pair);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "cannot load the changed TLS certificate; still serving the previous one");
            }
        }
        state.current.clone()
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("cert");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        (cert_path, key_path)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = pair(dir.path(), "a");
        let (_, key) = pair(dir.path(), "b");
        let error = ReloadingResolver::new(&cert, &key, provider()).expect_err("mismatch");
        let message = error.to_string();
        assert!(
            message.contains("a.crt") && message.contains("b.key"),
            "{message}"
        );
        assert!(message.contains("does not belong"), "{message}");
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair(dir.path(), "a");
        let missing = dir.path().join("missing.crt");
        let error = ReloadingResolver::new(&missing, &key, provider()).expect_err("missing");
        assert!(error.to_string().contains("missing.crt"), "{error}");
        std::fs::write(&cert, "").expect("write");
        let error = ReloadingResolver::new(&cert, &key, provider()).expect_err("empty");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn a_self_signed_certificate_is_trusted_for_its_names_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = pair(dir.path(), "localhost");
        check_trusted(&cert, &cert, "localhost").expect("trusted");
        let error = check_trusted(&cert, &cert, "127.0.0.1").expect_err("not its name");
        assert!(
            error.contains("NotValidForName") || error.contains("not valid for name"),
            "{error}"
        );
        let (other, _) = pair(dir.path(), "other");
        let error = check_trusted(&cert, &other, "localhost").expect_err("another CA");
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[test]
    fn a_changed_pair_is_served_and_a_bad_one_keeps_the_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair(dir.path(), "a");
        let resolver = ReloadingResolver::new(&cert, &key, provider()).expect("loads");
        let first = resolver.current().cert[0].clone();

        // A bad pair: the certificate of b with the key of a.
        let (b_cert, b_key) = pair(dir.path(), "b");
        std::fs::copy(&b_cert, &cert).expect("copy");
        resolver.state.lock().checked -= RELOAD_CHECK;
        assert_eq!(
            resolver.current().cert[0],
            first,
            "the bad pair is not served"
        );

        std::fs::copy(&b_key, &key).expect("copy");
        resolver.state.lock().checked -= RELOAD_CHECK;
        let reloaded = resolver.current().cert[0].clone();
        assert_ne!(reloaded, first, "the new pair is served");
        assert_eq!(reloaded, read_certs(&b_cert).expect("b")[0]);
    }
}
