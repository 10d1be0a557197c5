//! nginx as the load balancer, configured from `deploy/nginx.conf.template` (the file
//! docker-compose and `scripts/topology.sh` use) in a temp prefix on free ports. Besides the
//! load-balanced port, one extra port per instance always proxies to that instance.

use super::http::http_get;
use super::{POLL, TempDir, WAIT, free_port, repo_path};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Substitutes `${NAME}` placeholders, refusing to leave any `${TTT_...}` behind: a typo in
/// the template or here would otherwise reach nginx as a literal.
fn render_template(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(at) = out.find("${TTT_") {
        let rest: String = out[at..].chars().take(40).collect();
        panic!("nginx template placeholder left unrendered: {rest}");
    }
    out
}

/// nginx from `NGINX_BIN`, the PATH or `/usr/sbin`; a missing one fails with what to install.
pub fn nginx_bin() -> PathBuf {
    let bin = match std::env::var_os("NGINX_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx")),
    };
    assert!(
        bin.is_file(),
        "nginx is not installed (looked for {}; NGINX_BIN overrides): \
         run scripts/install-test-deps.sh",
        bin.display()
    );
    bin
}

/// nginx as the load balancer, killed (with its workers) on drop.
pub struct Nginx {
    /// The load-balanced port: any instance may answer.
    pub port: u16,
    /// `pinned[i]` always reaches `backends[i]`.
    pub pinned: Vec<u16>,
    child: Option<Child>,
    dir: TempDir,
}

impl Nginx {
    pub async fn start(backends: &[SocketAddr]) -> Nginx {
        let bin = nginx_bin();
        let dir = TempDir::new("nginx");
        let port = free_port();
        let pinned: Vec<u16> = backends.iter().map(|_| free_port()).collect();
        let upstreams: String = backends
            .iter()
            .map(|b| format!("server {b} max_fails=0; "))
            .collect();
        let extra: String = backends
            .iter()
            .zip(&pinned)
            .map(|(b, p)| {
                format!(
                    "server {{ listen 127.0.0.1:{p}; location / {{ proxy_pass http://{b}; }} }}\n"
                )
            })
            .collect();
        let template = std::fs::read_to_string(repo_path("deploy/nginx.conf.template"))
            .expect("deploy/nginx.conf.template");
        let conf = render_template(
            &template,
            &[
                ("TTT_LISTEN", format!("127.0.0.1:{port}")),
                ("TTT_UPSTREAMS", upstreams),
                ("TTT_RUN_DIR", dir.0.display().to_string()),
                ("TTT_EXTRA_SERVERS", extra),
            ],
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let access = std::fs::File::create(dir.0.join("access.log")).expect("access log");
        let errors = std::fs::File::create(dir.0.join("stderr.log")).expect("stderr log");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(access)
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let mut nginx = Nginx {
            port,
            pinned,
            child: Some(child),
            dir,
        };
        let ports: Vec<u16> = std::iter::once(port).chain(nginx.pinned.clone()).collect();
        for p in ports {
            nginx.wait_serving(p).await;
        }
        nginx
    }

    async fn wait_serving(&mut self, port: u16) {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = http_get(addr, "/healthz").await {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("nginx exited ({status}):\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("nginx is not serving on {port}:\n{}", self.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn pinned_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}/", self.pinned[i])
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// Errors and the access log (which names the upstream of every request).
    pub fn log(&self) -> String {
        ["error.log", "stderr.log", "access.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.0.join(f)).unwrap_or_default();
                format!("--- nginx {f} ---\n{text}")
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM: the master stops its workers. A SIGKILLed master would leave them behind,
        // still holding the ports.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
