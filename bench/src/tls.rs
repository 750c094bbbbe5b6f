//! `--tls`: a CA and a server certificate for a benchmark's servers (the ones the server's
//! TLS tests make, `tandem_testkit::tls`), and the options that put the servers, their
//! replication links and the client on TLS. Both servers get the same options; clients
//! present no certificate (`tls-auth-clients no`), so what is measured is the encrypted data
//! path, not handshakes.

use anyhow::Context as _;
use tandem_testkit::tls::{Pki, Usage};

pub struct Certs {
    pki: Pki,
}

impl Certs {
    pub fn make() -> anyhow::Result<Certs> {
        let pki = Pki::new("tandem-bench-tls")
            .and_then(|pki| pki.signed("ca", "server", Usage::Server).map(|()| pki))
            .context("making certificates with openssl (apt-get install openssl)")?;
        Ok(Certs { pki })
    }

    /// A server's options: `tls_port` with the certificate and the CA, and its link to a
    /// master over TLS.
    pub fn server_args(&self, tls_port: u16) -> Vec<String> {
        let mut args = self.pki.server_args(tls_port, "no");
        args.extend(["--tls-replication".into(), "yes".into()]);
        args
    }

    /// redis-benchmark's options.
    pub fn client_args(&self) -> Vec<String> {
        vec!["--tls".into(), "--cacert".into(), self.pki.path("ca.crt")]
    }
}
