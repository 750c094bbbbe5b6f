//! Certificates for servers under TLS, made with the `openssl` command: a CA, certificates it
//! signs for servers (naming the loopback host and address) and clients, one that expired,
//! and the options that give a server a TLS port with them. The server's TLS tests and
//! `tandem-bench --tls` use the same ones. Everything is X.509 v3, as rustls requires.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// What a certificate is for.
#[derive(Clone, Copy, Debug)]
pub enum Usage {
    /// Names `localhost` and 127.0.0.1, as a client that checks names (rustls) needs.
    Server,
    /// Names no host.
    Client,
}

impl Usage {
    fn ext_file(self) -> &'static str {
        match self {
            Usage::Server => "server.ext",
            Usage::Client => "client.ext",
        }
    }
}

/// A directory of keys and certificates (`<name>.key`, `<name>.crt`), removed on drop.
pub struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    /// A fresh directory under the temp directory, with the CA `ca`.
    ///
    /// # Errors
    /// The directory cannot be made, or openssl is missing or fails.
    pub fn new(prefix: &str) -> io::Result<Pki> {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let pki = Pki { dir };
        std::fs::write(
            pki.dir.join("server.ext"),
            "keyUsage = digitalSignature, keyEncipherment\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )?;
        std::fs::write(
            pki.dir.join("client.ext"),
            "keyUsage = digitalSignature, keyEncipherment\n",
        )?;
        pki.ca("ca")?;
        Ok(pki)
    }

    /// The path of a file in the directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// Runs openssl in the directory.
    ///
    /// # Errors
    /// openssl is missing or fails (its stderr in the message).
    pub fn openssl(&self, args: &[&str]) -> io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Another self-signed CA, `name`.
    ///
    /// # Errors
    /// As [`Pki::openssl`].
    pub fn ca(&self, name: &str) -> io::Result<()> {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        self.openssl(&["genrsa", "-out", &key, "2048"])?;
        let subj = format!("/O=Tandem Test/CN={name}");
        self.openssl(&[
            "req", "-x509", "-new", "-nodes", "-sha256", "-key", &key, "-days", "3650", "-subj",
            &subj, "-out", &crt,
        ])
    }

    /// A key and a certificate for it signed by `ca`, valid for a year.
    ///
    /// # Errors
    /// As [`Pki::openssl`].
    pub fn signed(&self, ca: &str, name: &str, usage: Usage) -> io::Result<()> {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        self.openssl(&["genrsa", "-out", &key, "2048"])?;
        let subj = format!("/O=Tandem Test/CN={name}");
        self.openssl(&[
            "req", "-new", "-sha256", "-key", &key, "-subj", &subj, "-out", &csr,
        ])?;
        self.openssl(&[
            "x509",
            "-req",
            "-sha256",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            usage.ext_file(),
            "-out",
            &crt,
        ])
    }

    /// `name`: a client certificate for `key_of`'s key (made by [`Pki::signed`]), signed by
    /// `ca`, that expired in 2020.
    ///
    /// # Errors
    /// As [`Pki::openssl`].
    pub fn expired(&self, key_of: &str, name: &str) -> io::Result<()> {
        let conf = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n";
        std::fs::write(self.dir.join("ca.cnf"), conf)?;
        std::fs::write(self.dir.join("index.txt"), "")?;
        std::fs::write(self.dir.join("serial"), "1000\n")?;
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.crt",
            "-keyfile",
            "ca.key",
            "-in",
            &format!("{key_of}.csr"),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extfile",
            Usage::Client.ext_file(),
            "-notext",
            "-out",
            &format!("{name}.crt"),
        ])?;
        std::fs::copy(
            self.dir.join(format!("{key_of}.key")),
            self.dir.join(format!("{name}.key")),
        )?;
        Ok(())
    }

    /// A server's options (tandem-server's and redis-server's alike): `tls_port` with the
    /// certificate `server` and the CA `ca`, and `tls-auth-clients` as `auth`.
    pub fn server_args(&self, tls_port: u16, auth: &str) -> Vec<String> {
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
            auth,
        ]
        .map(String::from)
        .to_vec()
    }
}
