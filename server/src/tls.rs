//! TLS contexts from the `tls-*` directives: what rustls needs to accept clients on
//! `tls-port` and to connect to a TLS master, built when the server starts and again on each
//! CONFIG SET of a `tls-*` directive (Redis 7.0's `tlsConfigure`): the files are read anew,
//! new connections take the new contexts, established ones keep the session they have.
//!
//! What OpenSSL offers and rustls does not is refused here with the reason: encrypted private
//! keys, TLSv1 and TLSv1.1, cipher names outside rustls's suites.

use crate::config::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};
use std::sync::Arc;

/// The server context (the TLS port) and the client context (the link to a TLS master).
#[derive(Clone, Debug)]
pub struct Contexts {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// Why the contexts could not be built, in Redis 7.0's log words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("No tls-cert-file configured!")]
    NoCert,
    #[error("No tls-key-file configured!")]
    NoKey,
    #[error(
        "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!"
    )]
    NoCa,
    #[error(
        "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'."
    )]
    Protocols,
    #[error("tls-protocols '{0}': only TLSv1.2 and TLSv1.3 are supported (rustls)")]
    OldProtocols(String),
    #[error("Failed to load certificate: {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("Failed to load private key: {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("Failed to configure CA certificate(s) file/directory: {0}")]
    Ca(String),
    #[error("Failed to configure ciphers: {0} (supported: {TLS12_NAMES})")]
    Ciphers(String),
    #[error("Failed to configure ciphersuites: {0} (supported: {TLS13_NAMES})")]
    Ciphersuites(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Whether the server needs contexts: a TLS port or replication over TLS.
pub fn wanted(c: &Config) -> bool {
    c.tls_port != 0 || c.tls_replication
}

/// Builds both contexts from the configuration, reading the files now.
///
/// # Errors
/// A file is missing or unreadable, a value names what rustls cannot do, or the
/// certificates and key do not fit together.
pub fn contexts(c: &Config) -> Result<Contexts, TlsError> {
    let cert_file = non_empty(&c.tls_cert_file).ok_or(TlsError::NoCert)?;
    let key_file = non_empty(&c.tls_key_file).ok_or(TlsError::NoKey)?;
    let auth = c.tls_auth_clients.as_str();
    let has_ca = !c.tls_ca_cert_file.is_empty() || !c.tls_ca_cert_dir.is_empty();
    if (auth != "no" || c.tls_replication) && !has_ca {
        return Err(TlsError::NoCa);
    }
    let versions = protocols(&c.tls_protocols)?;
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites(&c.tls_ciphers, &c.tls_ciphersuites)?,
        ..ring::default_provider()
    });
    let roots = Arc::new(roots(&c.tls_ca_cert_file, &c.tls_ca_cert_dir)?);

    let chain = certificates(cert_file)?;
    let key = private_key(key_file, &c.tls_key_file_pass)?;
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = match auth {
        "no" => builder.with_no_client_auth(),
        _ => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = if auth == "optional" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Cert {
            path: cert_file.to_string(),
            reason: e.to_string(),
        })?;

    // The replica presents tls-client-cert-file, or the server's own certificate without one.
    let (client_chain, client_key) = match non_empty(&c.tls_client_cert_file) {
        Some(file) => {
            let key_file = non_empty(&c.tls_client_key_file).unwrap_or(file);
            (
                certificates(file)?,
                private_key(key_file, &c.tls_client_key_file_pass)?,
            )
        }
        None => (
            certificates(cert_file)?,
            private_key(key_file, &c.tls_key_file_pass)?,
        ),
    };
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
        .with_client_auth_cert(client_chain, client_key)?;
    Ok(Contexts {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The name a replica gives the master it connects to: its host as configured.
/// Names that are neither a DNS name nor an address (the name is not checked anyway, see
/// [`ChainOnly`]) go as the loopback address.
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `tls-protocols`: Redis's words, case-insensitive; empty means TLSv1.2 and TLSv1.3.
fn protocols(v: &str) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    if v.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for word in v.split(' ').filter(|w| !w.is_empty()) {
        match word.to_ascii_lowercase().as_str() {
            "tlsv1" | "tlsv1.1" => {}
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            _ => return Err(TlsError::Protocols),
        }
    }
    if out.is_empty() {
        return Err(TlsError::OldProtocols(v.to_string()));
    }
    Ok(out)
}

/// TLSv1.2 suites by their OpenSSL names (`tls-ciphers`).
const TLS12: &[(&str, SupportedCipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];
const TLS12_NAMES: &str = "DEFAULT, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305";

/// TLSv1.3 suites by their IANA names (`tls-ciphersuites`).
const TLS13: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];
const TLS13_NAMES: &str =
    "TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256";

/// The suites offered: each version's list as given (colon-separated, in preference
/// order), or all of rustls's when its directive is empty.
fn suites(ciphers: &str, ciphersuites: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let pick = |v: &str, table: &[(&str, SupportedCipherSuite)], all_word: Option<&str>| {
        if v.trim().is_empty() {
            return Some(table.iter().map(|(_, s)| *s).collect::<Vec<_>>());
        }
        let mut out = Vec::new();
        for name in v.split(':').map(str::trim).filter(|n| !n.is_empty()) {
            if all_word.is_some_and(|w| w.eq_ignore_ascii_case(name)) {
                out.extend(table.iter().map(|(_, s)| *s));
                continue;
            }
            out.push(table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?.1);
        }
        Some(out)
    };
    let mut out = pick(ciphersuites, TLS13, None)
        .ok_or_else(|| TlsError::Ciphersuites(ciphersuites.to_string()))?;
    out.extend(
        pick(ciphers, TLS12, Some("DEFAULT"))
            .ok_or_else(|| TlsError::Ciphers(ciphers.to_string()))?,
    );
    Ok(out)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.to_string(),
        reason,
    };
    let pem = read(path).map_err(err)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(chain)
}

/// A PEM private key in the clear (PKCS#8, PKCS#1 or SEC1). rustls has no decryption for
/// keys, so an encrypted one, or any `tls-key-file-pass`, is refused with what to do.
fn private_key(path: &str, pass: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |reason: String| TlsError::Key {
        path: path.to_string(),
        reason,
    };
    let pem = read(path).map_err(err)?;
    if !pass.is_empty() || memchr::memmem::find(&pem, b"ENCRYPTED").is_some() {
        return Err(err(
            "encrypted private keys are not supported; decrypt the key (openssl pkey -in KEY -out KEY.plain) and leave tls-key-file-pass empty".into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| err(e.to_string()))
}

/// The trusted CAs: every certificate of `tls-ca-cert-file` and of the files in
/// `tls-ca-cert-dir` (OpenSSL looks a directory's up by hashed names; here each file is read).
fn roots(file: &str, dir: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let mut add = |path: &str, pem: &[u8]| -> Result<(), TlsError> {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsError::Ca(format!("{path}: {e}")))?;
            store
                .add(cert)
                .map_err(|e| TlsError::Ca(format!("{path}: {e}")))?;
        }
        Ok(())
    };
    if !file.is_empty() {
        let pem = read(file).map_err(|e| TlsError::Ca(format!("{file}: {e}")))?;
        add(file, &pem)?;
    }
    if !dir.is_empty() {
        let entries = std::fs::read_dir(dir).map_err(|e| TlsError::Ca(format!("{dir}: {e}")))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file()
                && let Ok(pem) = std::fs::read(&path)
            {
                add(&path.to_string_lossy(), &pem)?;
            }
        }
    }
    Ok(store)
}

/// A master's certificate checked as Redis's OpenSSL context checks it: the chain up to a
/// trusted CA, validity and signatures, but not the host name (Redis sets no host to match,
/// and replicas reach masters by addresses certificates rarely name).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last: a name error means the chain passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustls::{CipherSuite, ProtocolVersion};

    #[test]
    fn protocols_in_redis_words() {
        let versions = |v: &str| -> Vec<ProtocolVersion> {
            protocols(v).unwrap().iter().map(|p| p.version).collect()
        };
        assert_eq!(
            versions(""),
            [ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2]
        );
        assert_eq!(versions("TLSv1.2"), [ProtocolVersion::TLSv1_2]);
        assert_eq!(versions("tlsv1.1 TLSv1.3"), [ProtocolVersion::TLSv1_3]);
        assert!(matches!(
            protocols("TLSv1 TLSv1.1"),
            Err(TlsError::OldProtocols(_))
        ));
        assert!(matches!(protocols("SSLv3"), Err(TlsError::Protocols)));
    }

    #[test]
    fn suites_by_their_names_in_the_given_order() {
        assert_eq!(suites("", "").unwrap().len(), TLS12.len() + TLS13.len());
        let chosen: Vec<CipherSuite> = suites(
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        )
        .unwrap()
        .iter()
        .map(SupportedCipherSuite::suite)
        .collect();
        assert_eq!(
            chosen,
            [
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ]
        );
        assert_eq!(
            suites("DEFAULT", "").unwrap().len(),
            TLS12.len() + TLS13.len()
        );
        assert!(matches!(
            suites("HIGH:!aNULL", ""),
            Err(TlsError::Ciphers(_))
        ));
        assert!(matches!(
            suites("", "TLS_AES_128_CCM_SHA256"),
            Err(TlsError::Ciphersuites(_))
        ));
    }

    /// Redis's order of checks: the certificate, the key, then a CA when clients are
    /// verified or replication is TLS; only then are files read.
    #[test]
    fn required_directives_are_checked_first() {
        let mut c = Config {
            tls_port: 6380,
            ..Config::default()
        };
        assert!(matches!(contexts(&c), Err(TlsError::NoCert)));
        c.tls_cert_file = "missing.crt".into();
        assert!(matches!(contexts(&c), Err(TlsError::NoKey)));
        c.tls_key_file = "missing.key".into();
        assert!(matches!(contexts(&c), Err(TlsError::NoCa)));
        c.tls_auth_clients = "no".into();
        assert!(matches!(contexts(&c), Err(TlsError::Cert { .. })));
        c.tls_replication = true;
        assert!(matches!(contexts(&c), Err(TlsError::NoCa)));
    }
}
