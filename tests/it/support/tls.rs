//! Certificates for the tests of Redis over TLS.

use std::path::Path;
use std::process::Command;

/// A TLS server's settings (name, value) for the certificates `make_certificates` left in
/// `dir`; clients need no certificate of their own. The configuration file's form; see
/// [`server_args`] for the command line's.
pub fn server_settings(dir: &Path) -> Vec<(&'static str, String)> {
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        ("tls-cert-file", file("server.crt")),
        ("tls-key-file", file("server.key")),
        ("tls-ca-cert-file", file("ca.crt")),
        ("tls-auth-clients", "no".into()),
    ]
}

/// [`server_settings`] as redis-server's command-line arguments.
pub fn server_args(dir: &Path) -> Vec<String> {
    server_settings(dir)
        .into_iter()
        .flat_map(|(name, value)| [format!("--{name}"), value])
        .collect()
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with the openssl
/// command (installed with redis-server's dependencies on Debian).
pub fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/install-test-deps.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tictactoe test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("write ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}
