//! `--tls`: a CA and a server certificate for a benchmark's servers, made with the openssl
//! command, and the options that put the servers, their replication links and the client on
//! TLS. Both servers get the same options; clients present no certificate
//! (`tls-auth-clients no`), so what is measured is the encrypted data path, not handshakes.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The certificates' directory, removed on drop.
pub struct Certs {
    dir: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Certs {
    /// Makes a CA and a server certificate (RSA 2048, SHA-256, X.509 v3 as rustls requires).
    pub fn make() -> anyhow::Result<Certs> {
        let dir = std::env::temp_dir().join(format!("tandem-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let certs = Certs { dir };
        std::fs::write(
            certs.dir.join("server.ext"),
            "keyUsage = digitalSignature, keyEncipherment\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )?;
        let steps: &[&[&str]] = &[
            &["genrsa", "-out", "ca.key", "2048"],
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-sha256",
                "-key",
                "ca.key",
                "-days",
                "30",
                "-subj",
                "/O=tandem-bench/CN=CA",
                "-out",
                "ca.crt",
            ],
            &["genrsa", "-out", "server.key", "2048"],
            &[
                "req",
                "-new",
                "-sha256",
                "-key",
                "server.key",
                "-subj",
                "/O=tandem-bench/CN=server",
                "-out",
                "server.csr",
            ],
            &[
                "x509",
                "-req",
                "-sha256",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        ];
        for args in steps {
            openssl(&certs.dir, args)?;
        }
        Ok(certs)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// A server's options: `tls_port` with the certificate and the CA, and its link to a
    /// master over TLS.
    pub fn server_args(&self, tls_port: u16) -> Vec<String> {
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.path("server.crt"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.crt"),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    }

    /// redis-benchmark's options.
    pub fn client_args(&self) -> Vec<String> {
        vec!["--tls".into(), "--cacert".into(), self.path("ca.crt")]
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("failed to run openssl (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
