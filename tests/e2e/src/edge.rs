//! The web tier for tests: real nginx and lighttpd started with the project's own configuration
//! (`deploy/nginx`, `deploy/lighttpd`, `deploy/web`) on free loopback ports, in front of a running
//! [`crate::System`]. Only what differs between environments is written here — listen address,
//! the gateway list, pid, log and temp paths — just as the compose and production entry files do;
//! the site configuration itself is the committed file, linked or included unchanged.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// Finds a program installed from a Debian package. A missing one fails the test with a message
/// that says how to get it: these tests never skip.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the edge tests need the Debian package `{package}` \
                 (deploy/local/xintu test installs it; or apt-get install {package})"
            )
        })
}

/// The lowest port of the kernel's ephemeral range, from which it gives ports to outgoing
/// connections and to binds of port 0.
fn ephemeral_ports_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A loopback port that was free a moment ago, for a server started next to listen on. Taken
/// below the ephemeral range: a port from it (what binding port 0 gives) may go to any outgoing
/// connection of the machine before the server binds it, as one did to a chromedriver in CI
/// ("Address already in use"), while below it only another test's pick, at random among
/// thousands, can collide.
pub fn free_port() -> u16 {
    let end = ephemeral_ports_start().max(FREE_PORTS_START + 1);
    for _ in 0..1000 {
        let port = rand::random_range(FREE_PORTS_START..end);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FREE_PORTS_START} and {end}")
}

/// Where [`free_port`] starts looking: above the ports of well-known servers (and of this
/// project's own MariaDB and Redis).
const FREE_PORTS_START: u16 = 10_000;

/// Where tests leave artifacts (screenshots): `$XINTU_ARTIFACTS_DIR`, else
/// `$CARGO_TARGET_DIR/artifacts`, else `target/artifacts` in the repository.
pub fn artifacts_dir() -> PathBuf {
    let dir = match (
        std::env::var_os("XINTU_ARTIFACTS_DIR"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(target)) => PathBuf::from(target).join("artifacts"),
        (None, None) => repo_root().join("target/artifacts"),
    };
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// A scratch directory for one server's configuration, logs and pid file. Removed when dropped,
/// unless the test is failing: then it is kept and its path printed.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "xintu-{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        Self { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process in its own process group: stopping it stops its workers too.
pub struct Process {
    name: String,
    child: Child,
    stderr: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to files in `dir`.
    pub fn spawn(name: &str, command: &mut Command, dir: &ScratchDir) -> Self {
        use std::os::unix::process::CommandExt;
        let stdout_path = dir.join(&format!("{name}.stdout"));
        let stderr_path = dir.join(&format!("{name}.stderr"));
        let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        Self {
            name: name.to_owned(),
            child,
            stderr: stderr_path,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails the test (with the program's own error output) if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let output = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            panic!("{} exited ({status}):\n{output}", self.name);
        }
    }

    /// Waits until `port` on loopback accepts connections (and the process still runs).
    pub async fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.assert_running();
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never listened on port {port}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM to the group, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // Workers of the group may outlive the leader for a moment.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stderr(Stdio::null())
                    .status();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `http://127.0.0.1:1234` → `127.0.0.1:1234`.
fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// How nginx listens in a test.
pub enum NginxListen {
    Plain,
    /// TLS with these certificate files and the shared `tls-params.conf`, as production does.
    Tls {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// nginx with `deploy/nginx/*.conf`, on a free port, in front of `gateways`.
pub struct Nginx {
    pub port: u16,
    pub url: String,
    dir: ScratchDir,
    process: Process,
}

impl Nginx {
    pub async fn start(gateways: &[String]) -> Self {
        Self::start_with(gateways, NginxListen::Plain).await
    }

    pub async fn start_with(gateways: &[String], listen: NginxListen) -> Self {
        let nginx = require_tool("nginx", "nginx");
        let dir = ScratchDir::new("nginx");
        // The committed files, unchanged: every *.conf of deploy/nginx.
        let source = repo_root().join("deploy/nginx");
        for entry in std::fs::read_dir(&source).expect("deploy/nginx") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|ext| ext == "conf") {
                let name = path.file_name().expect("file name");
                std::os::unix::fs::symlink(&path, dir.path.join(name)).expect("link a config");
            }
        }
        // What a test environment sets: env/ as compose and production have theirs.
        let env = dir.join("env");
        std::fs::create_dir_all(&env).expect("env dir");
        let temp = dir.join("temp");
        std::fs::create_dir_all(&temp).expect("temp dir");
        let http = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .map(|kind| format!("{kind}_temp_path {}/{kind};\n", temp.display()))
            .concat();
        std::fs::write(env.join("http.conf"), http).expect("env/http.conf");
        // Debian's nginx has no OpenTelemetry module: the gateway starts the trace here.
        for unused in ["modules.conf", "otel.conf"] {
            std::fs::write(env.join(unused), "").expect("env/*.conf");
        }
        let upstream: String = gateways
            .iter()
            .map(|url| format!("server {} max_fails=1 fail_timeout=10s;\n", host_port(url)))
            .collect();
        std::fs::write(env.join("upstream.conf"), upstream).expect("env/upstream.conf");
        let port = free_port();
        let (listen_conf, scheme) = match &listen {
            NginxListen::Plain => (format!("listen 127.0.0.1:{port};\n"), "http"),
            NginxListen::Tls { cert, key } => (
                format!(
                    "listen 127.0.0.1:{port} ssl;\nssl_certificate {};\nssl_certificate_key {};\ninclude tls-params.conf;\n",
                    cert.display(),
                    key.display()
                ),
                "https",
            ),
        };
        std::fs::write(env.join("listen.conf"), listen_conf).expect("env/listen.conf");

        let prefix = format!("{}/", dir.path.display());
        let globals = format!("daemon off; pid {}/nginx.pid;", dir.path.display());
        let mut process = Process::spawn(
            "nginx",
            Command::new(nginx)
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-g")
                .arg(&globals),
            &dir,
        );
        process.wait_for_port(port).await;
        Self {
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
            process,
        }
    }

    /// The access log so far: one JSON object per request (nginx.conf's `xintu` format).
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("nginx.stdout"))
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("an access log line is JSON"))
            .collect()
    }

    /// The access log entry of one request, by its request id (nginx logs a request just after
    /// answering it, so this waits for the line).
    pub async fn logged(&self, request_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .access_log()
                .into_iter()
                .find(|entry| entry["request_id"] == request_id);
            if let Some(entry) = found {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "no access log entry for request {request_id}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn error_log(&self) -> String {
        [self.dir.join("nginx.stderr"), self.dir.join("error.log")]
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect()
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

/// lighttpd with `deploy/lighttpd/xintu.conf` and `deploy/web`, in front of `gateways`.
pub struct Lighttpd {
    pub port: u16,
    pub url: String,
    dir: ScratchDir,
    process: Process,
}

impl Lighttpd {
    /// Starts on `port` (reserved by the caller, who may have told the gateways about it).
    pub async fn start(port: u16, gateways: &[String]) -> Self {
        let lighttpd = require_tool("lighttpd", "lighttpd");
        let magnet = Path::new("/usr/lib/lighttpd/mod_magnet.so");
        assert!(
            magnet.exists(),
            "lighttpd's mod_magnet is not installed: apt-get install lighttpd-modules-lua \
             (deploy/local/xintu test installs it)"
        );
        let dir = ScratchDir::new("lighttpd");
        let root = repo_root();
        let servers: Vec<String> = gateways
            .iter()
            .map(|url| {
                let (host, port) = host_port(url).rsplit_once(':').expect("host:port");
                format!(
                    "  ( \"host\" => \"{host}\", \"port\" => {port}, \"connect-timeout\" => 3, \
                     \"write-timeout\" => 30, \"read-timeout\" => 30 ),\n"
                )
            })
            .collect();
        // The test's entry file: the counterpart of deploy/lighttpd/lighttpd.conf.
        let entry = format!(
            "server.bind = \"127.0.0.1\"\n\
             server.port = {port}\n\
             server.pid-file = \"{dir}/lighttpd.pid\"\n\
             server.errorlog = \"{dir}/error.log\"\n\
             accesslog.filename = \"{dir}/access.log\"\n\
             var.xintu_web_root = \"{web}\"\n\
             var.xintu_conf_dir = \"{conf}\"\n\
             var.xintu_app_servers = (\n{servers})\n\
             include \"{conf}/xintu.conf\"\n",
            dir = dir.path.display(),
            web = root.join("deploy/web").display(),
            conf = root.join("deploy/lighttpd").display(),
            servers = servers.concat(),
        );
        std::fs::write(dir.join("lighttpd.conf"), entry).expect("lighttpd entry file");
        let check = Command::new(&lighttpd)
            .arg("-tt")
            .arg("-f")
            .arg(dir.join("lighttpd.conf"))
            .output()
            .expect("run lighttpd -tt");
        assert!(
            check.status.success(),
            "lighttpd refuses the configuration:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let mut process = Process::spawn(
            "lighttpd",
            Command::new(lighttpd)
                .arg("-D")
                .arg("-f")
                .arg(dir.join("lighttpd.conf")),
            &dir,
        );
        process.wait_for_port(port).await;
        Self {
            port,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            process,
        }
    }

    /// The URL of `path` under the virtual host `host` (a client resolves it to 127.0.0.1).
    pub fn host_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    /// The access log, once it holds a line containing `marker` (lighttpd writes its access log
    /// in batches, about once a second).
    pub async fn access_log_with(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
            if log.contains(marker) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "lighttpd's access log never showed {marker}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything logged so far: makes one more request and waits until it is in the log.
    pub async fn access_log_complete(&self) -> String {
        // In the path: the log keeps paths only, never query strings.
        let marker = format!("/log-marker-{}", rand_marker());
        let http = reqwest::Client::new();
        let _ = http.get(format!("{}{marker}", self.url)).send().await;
        self.access_log_with(&marker).await
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

fn rand_marker() -> u64 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    u64::from(std::process::id()) << 32 | u64::from(NEXT.fetch_add(1, Ordering::SeqCst))
}

/// An HTTP client that resolves the sites' host names to loopback, as a browser with the
/// production DNS would reach this machine.
pub fn site_client(
    port: u16,
    cookies: Option<std::sync::Arc<reqwest::cookie::Jar>>,
) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some(jar) = cookies {
        builder = builder.cookie_provider(jar);
    }
    for host in SITE_HOSTS {
        builder = builder.resolve(host, addr);
    }
    builder.build().expect("http client")
}

/// Every host name the web tier and the edge answer for.
pub const SITE_HOSTS: [&str; 5] = [
    "www.xintuxiangce.top",
    "admin.xintuxaingce.top",
    "admin.xintuxiangce.top",
    "www.aifuture.net.cn",
    "api.aifuture.net.cn",
];

/// Sends a request head announcing a body of `content_length` bytes but sends no body, and
/// returns the status line and headers the server answers with. An edge must refuse an oversized
/// body from the head alone, before anything reaches the app servers.
pub fn post_head_only(port: u16, host: &str, path: &str, content_length: usize) -> String {
    raw_http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n\
             Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
        ),
    )
}

/// Sends `request` as written (paths are not normalised as an HTTP client library would) and
/// returns the answer's status line and headers.
pub fn raw_http(port: u16, request: &str) -> String {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the edge");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(err) => panic!("no answer: {err}"),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    match text.find("\r\n\r\n") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}
