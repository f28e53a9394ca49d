//! `layerinv fetch` through the real hf-hub client against a tiny hub on 127.0.0.1 (never the
//! internet), the offline message, and loading a hub model from the cache.

mod common;

use common::{assert_clean_failure, layerinv_env, repo_path};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serve `body` as `timm/vgg16.tv_in1k/resolve/main/model.safetensors` with the headers hf-hub
/// reads (ETag, X-Repo-Commit, Content-Range), honouring Range requests. Serves at most
/// `max_requests` connections, then its thread ends.
fn fake_hub(body: Vec<u8>, max_requests: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = if b.is_empty() { body.len() - 1 } else { b.parse().unwrap() };
                    range = Some((a, b.min(body.len() - 1)));
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            if path != "/timm/vgg16.tv_in1k/resolve/main/model.safetensors" {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let (a, b) = range.unwrap_or((0, body.len() - 1));
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\nETag: \"fakeetag{}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
                b + 1 - a,
                body.len(),
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[a..=b]);
        }
    });
    (addr, served)
}

#[test]
fn fetch_downloads_into_the_cache_and_the_model_then_loads_offline() {
    let home = tempfile::tempdir().unwrap();
    let hf_home = home.path().to_str().unwrap();
    let env = [("HF_HOME", hf_home)];

    // Before: not downloaded, and the message says how to get it.
    let o = layerinv_env(&["info", "--model", "vgg16"], &env);
    assert_clean_failure(&o, &["not downloaded yet", "layerinv fetch vgg16", "timm/vgg16.tv_in1k"]);

    // The fake hub serves a real VGG-16 trunk file (the bundled one).
    let body = std::fs::read(repo_path("weights/vgg16_imagenet_trunk.f16.safetensors")).unwrap();
    let (endpoint, served) = fake_hub(body.clone(), 10);
    let o = layerinv_env(&["fetch", "vgg16", "--endpoint", &endpoint], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(served.load(Ordering::SeqCst) >= 2, "metadata + download requests");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("timm/vgg16.tv_in1k ready"), "{stdout}");

    let cached = home.path().join("hub/models--timm--vgg16.tv_in1k/snapshots").join(COMMIT).join("model.safetensors");
    assert_eq!(std::fs::read(&cached).unwrap(), body);

    // After: `--model vgg16` resolves from the cache without any network.
    let o = layerinv_env(&["info", "--model", "vgg16", "--json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["arch"], "vgg16");
    // A second fetch finds the cached file and makes no request.
    let before = served.load(Ordering::SeqCst);
    let o = layerinv_env(&["fetch", "vgg16", "--endpoint", &endpoint], &env);
    assert!(o.status.success());
    assert_eq!(served.load(Ordering::SeqCst), before);
}

#[test]
fn fetch_without_network_says_what_to_download_by_hand() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let o = layerinv_env(&["fetch", "vgg19", "--endpoint", &endpoint], &[("HF_HOME", home.path().to_str().unwrap())]);
    assert_clean_failure(
        &o,
        &[
            "could not download",
            "Offline?",
            "https://huggingface.co/timm/vgg19.tv_in1k/resolve/main/model.safetensors",
            "--model",
        ],
    );
}

#[test]
fn fetch_of_an_unknown_model_is_refused() {
    let o = layerinv_env(&["fetch", "resnet50"], &[]);
    common::assert_usage_error(&o, &["'resnet50'", "vgg16, vgg19"]);
}
