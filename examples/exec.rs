//! Exec into a running container, as ECS Exec does.
//!
//! ```sh
//! cargo run --example exec -- [COMMAND...]
//! ```
//!
//! starts a task whose container runs until told to stop, runs COMMAND inside it
//! (by default: who it is, its hostname, and what the kernel says of its
//! confinement), prints the command's output and `exec exit status: N`, then stops
//! the task within its grace period and says how long that took.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tasksandbox::{Container, TaskSandbox, TaskSize};

const GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let mut command: Vec<String> = std::env::args().skip(1).collect();
    if command.is_empty() {
        command = vec![
            "/bin/sh".into(),
            "-c".into(),
            "id; hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status".into(),
        ];
    }
    let run = || -> Result<i32, tasksandbox::Error> {
        let sandbox = TaskSandbox::builder()
            .size(TaskSize::fargate(256, 512)?)
            .stop_timeout(GRACE)
            .container(Container::new("app").command([
                "/bin/sh",
                "-c",
                // A workload that stops cleanly on SIGTERM.
                "trap 'exit 0' TERM; while :; do sleep 0.1; done",
            ]))
            .build()?;
        let mut task = sandbox.start()?;
        let output = task.exec("app", &command)?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        println!("exec exit status: {}", output.status.shell_code());
        let asked = Instant::now();
        let exit = task.stop(GRACE)?;
        println!(
            "task stopped in {:.0?} (grace {GRACE:?}): {exit}",
            asked.elapsed()
        );
        Ok(output.status.shell_code())
    };
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("error: {}", err.chain());
            ExitCode::from(2)
        }
    }
}
