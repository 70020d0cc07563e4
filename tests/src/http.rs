//! HTTP as a client sees it: requests, a static file server, a caching proxy, a
//! served tileset mirrored.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::binaries::{TempDir, temp_dir};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = ureq::get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).expect("body");
    Reply { status, headers, body }
}

pub fn get_json(url: &str) -> Value {
    let r = get(url, &[]);
    assert_eq!(r.status, 200, "GET {url}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A bare static file server (std only) for tilesets written by other tools: `routes`
/// maps exact paths to bodies, `mounts` maps a URL prefix to a directory.
pub struct StaticServer {
    pub url: String,
}

impl StaticServer {
    pub fn start(routes: Vec<(String, Vec<u8>)>, mounts: Vec<(String, PathBuf)>) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = routes.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone()).or_else(|| {
                    mounts.iter().find_map(|(prefix, dir)| {
                        let rest = path.strip_prefix(prefix.as_str())?;
                        if rest.contains("..") {
                            return None;
                        }
                        std::fs::read(dir.join(rest)).ok()
                    })
                });
                let reply = match &body {
                    Some(b) => {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    }
                };
                let _ = stream.write_all(reply.as_bytes());
                if let Some(b) = body {
                    let _ = stream.write_all(&b);
                }
            }
        });
        Self { url }
    }
}

pub fn post_json(url: &str, body: &Value) -> u16 {
    match ureq::post(url).set("content-type", "application/json").send_string(&body.to_string()) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// Downloads a layer's tileset from a running server as a client would (the
/// tileset, every content it names and the external tilesets those are, each
/// relative to the file naming it) into `dest`; returns the root tileset's path.
pub fn mirror_served_tileset(base: &str, layer: &str, dest: &Path) -> PathBuf {
    fn uris(tile: &Value, out: &mut Vec<String>) {
        for content in tile["content"]
            .as_object()
            .into_iter()
            .chain(tile["contents"].as_array().into_iter().flatten().filter_map(Value::as_object))
        {
            if let Some(u) = content.get("uri").and_then(Value::as_str) {
                out.push(u.to_owned());
            }
        }
        for child in tile["children"].as_array().into_iter().flatten() {
            uris(child, out);
        }
    }
    let mut pending = vec!["tileset.json".to_owned()];
    let mut seen = std::collections::HashSet::new();
    while let Some(rel) = pending.pop() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let reply = get(&format!("{base}/3dtiles/{layer}/{rel}"), &[]);
        assert_eq!(reply.status, 200, "GET /3dtiles/{layer}/{rel}: {}", String::from_utf8_lossy(&reply.body));
        let file = dest.join(&rel);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, &reply.body).expect("write");
        if rel.ends_with(".json") {
            let dir = rel.rsplit_once('/').map_or(String::new(), |(d, _)| format!("{d}/"));
            let mut found = Vec::new();
            uris(&reply.json()["root"], &mut found);
            pending.extend(found.into_iter().map(|u| format!("{dir}{u}")));
        }
    }
    dest.join("tileset.json")
}

/// nginx (Debian's) as a shared cache in front of `upstream`: every answer it may
/// keep is kept ten minutes, and `X-Cache-Status` says whether it came from the cache.
pub struct CachingProxy {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl CachingProxy {
    pub fn start(upstream: &str) -> Self {
        let dir = temp_dir("nginx");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(dir.join("cache")).expect("cache dir");
        let conf = format!(
            r#"user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache keys_zone=shared:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_cache shared;
            proxy_cache_valid any 10m;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&*dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx (apt install nginx-light)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, url, _dir: dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for CachingProxy {
    fn drop(&mut self) {
        // TERM: the master stops its workers too (a KILL would orphan them).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
