//! An app container serving HTTP on 127.0.0.1 and a sidecar that fetches from it,
//! in one task: the two share the task's network namespace and nothing else.
//!
//! ```sh
//! cargo run --example sidecar
//! ```
//!
//! prints `sidecar received: ` followed by the body the app served, and exits 0. The
//! same binary plays both containers (`serve`, `fetch`, and `check`, the app's health
//! check; `idle`, a sidecar that waits for SIGTERM, serves the task benchmark), bound
//! read-only into each at /sidecar.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tasksandbox::{Condition, Container, HealthCheck, TaskSandbox, TaskSize, Volume};

const ADDR: &str = "127.0.0.1:8080";
const BODY: &str = "hello from the app container\n";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("serve") => serve(),
        Some("fetch") => fetch(),
        Some("check") => check(),
        Some("idle") => idle(),
        _ => launch(),
    }
}

/// The launcher: one task, two containers.
fn launch() -> ExitCode {
    let run = || -> Result<i32, tasksandbox::Error> {
        let me = std::env::current_exe().map_err(|e| tasksandbox::Error::Host {
            operation: "find this program".into(),
            source: e,
        })?;
        let bind = || Volume::bind(&me, "/sidecar");
        let sandbox = TaskSandbox::builder()
            .size(TaskSize::fargate(256, 512)?)
            .stop_timeout(Duration::from_secs(5))
            .container(
                Container::new("app")
                    .volume(bind())
                    .command(["/sidecar", "serve"])
                    .health_check(
                        HealthCheck::new(["/sidecar", "check"])
                            .interval(Duration::from_millis(100))
                            .timeout(Duration::from_secs(2))
                            .retries(50),
                    ),
            )
            .container(
                Container::new("sidecar")
                    .volume(bind())
                    .command(["/sidecar", "fetch"])
                    .depends_on("app", Condition::Healthy),
            )
            .build()?;
        let exit = sandbox.start()?.wait()?;
        eprintln!("task stopped: {exit}");
        Ok(exit
            .container("sidecar")
            .and_then(|c| c.status)
            .map_or(1, |s| s.shell_code()))
    };
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("error: {}", err.chain());
            ExitCode::from(2)
        }
    }
}

extern "C" fn on_term(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// The app: answers every request with BODY until SIGTERM.
fn serve() -> ExitCode {
    // SAFETY: installing a handler that only calls _exit; the workload is pid 1 of
    // its pid namespace and would otherwise ignore SIGTERM.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    let listener = match TcpListener::bind(ADDR) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("app: bind {ADDR}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
    }
    ExitCode::SUCCESS
}

/// A sidecar with nothing to do: waits for SIGTERM (used by the task benchmark).
fn idle() -> ExitCode {
    // SAFETY: as in `serve`.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

/// The health check: is the app listening?
fn check() -> ExitCode {
    match TcpStream::connect(ADDR) {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The sidecar: one GET over loopback, the body printed.
fn fetch() -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stream = loop {
        match TcpStream::connect(ADDR) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                eprintln!("sidecar: connect {ADDR}: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut response = String::new();
    let sent = stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if sent
        .and_then(|()| stream.read_to_string(&mut response))
        .is_err()
    {
        eprintln!("sidecar: the request failed");
        return ExitCode::FAILURE;
    }
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => {
            print!("sidecar received: {body}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("sidecar: unexpected response {response:?}");
            ExitCode::FAILURE
        }
    }
}
