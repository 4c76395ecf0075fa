//! One Lambda function run locally: its Runtime API and a fixed number of processes of its
//! binary polling it, each restarted (with a bounded backoff) when it exits, their output
//! forwarded into our log.
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::runtime_api::{InvokeError, RuntimeApi};
use super::LambdaError;

/// First delay before restarting a process that exited.
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The delay doubles with each quick exit up to this: a binary that cannot start is retried
/// forever, but without flooding the log.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long before exiting was healthy: its restart starts from the
/// shortest delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The memory size the processes are told they have (Lambda's `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
const MEMORY_SIZE_MB: &str = "256";

/// An executable with its arguments and extra environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of the parent's environment (and under the Lambda variables we set).
    pub env: Vec<(OsString, OsString)>,
}

impl Program {
    pub fn new(path: impl Into<PathBuf>) -> Program {
        Program {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Program {
        self.env.push((name.into(), value.into()));
        self
    }
}

/// What to run for one function.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// `AWS_LAMBDA_FUNCTION_NAME`, and the name in our logs.
    pub name: String,
    pub program: Program,
    /// Processes polling the function's Runtime API (each handles one event at a time).
    pub concurrency: usize,
    /// How long an invocation may take, queueing included.
    pub timeout: Duration,
}

/// A running function: invoke it, stop it. Dropping it kills its processes.
pub struct Function {
    api: Arc<RuntimeApi>,
    supervisor: Arc<Supervisor>,
    stop: watch::Sender<bool>,
    slots: Mutex<Vec<JoinHandle<()>>>,
}

/// What the per-process tasks share.
struct Supervisor {
    spec: FunctionSpec,
    runtime_api: String,
    restarts: AtomicU64,
    /// The pid in each slot, while a process runs there.
    pids: Mutex<Vec<Option<u32>>>,
}

impl Function {
    /// Serves the function's Runtime API and starts its processes. A binary that cannot be
    /// started at all is an error here; later exits are restarts.
    pub async fn start(spec: FunctionSpec) -> Result<Function, LambdaError> {
        if spec.concurrency == 0 {
            return Err(LambdaError::Concurrency);
        }
        let api = RuntimeApi::bind(&spec.name, spec.timeout)
            .await
            .map_err(|source| LambdaError::Bind {
                function: spec.name.clone(),
                source,
            })?;
        let supervisor = Arc::new(Supervisor {
            runtime_api: api.addr().to_string(),
            restarts: AtomicU64::new(0),
            pids: Mutex::new(vec![None; spec.concurrency]),
            spec,
        });
        let api = Arc::new(api);
        let (stop, stopping) = watch::channel(false);
        let mut slots = Vec::with_capacity(supervisor.spec.concurrency);
        for slot in 0..supervisor.spec.concurrency {
            let child = match supervisor.spawn(slot) {
                Ok(child) => child,
                Err(source) => {
                    // Already started processes die with their tasks (kill_on_drop).
                    for task in &slots {
                        JoinHandle::abort(task);
                    }
                    return Err(LambdaError::Spawn {
                        path: supervisor.spec.program.path.clone(),
                        source,
                    });
                }
            };
            slots.push(tokio::spawn(supervise(
                slot,
                supervisor.clone(),
                api.clone(),
                child,
                stopping.clone(),
            )));
        }
        tracing::info!(
            function = supervisor.spec.name,
            runtime_api = supervisor.runtime_api,
            processes = supervisor.spec.concurrency,
            program = %supervisor.spec.program.path.display(),
            "Lambda function started"
        );
        Ok(Function {
            api,
            supervisor,
            stop,
            slots: Mutex::new(slots),
        })
    }

    pub fn name(&self) -> &str {
        &self.supervisor.spec.name
    }

    /// Invokes the function with an event (JSON) and returns its response (JSON).
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Result<Bytes, InvokeError> {
        self.api.invoke(payload.into()).await
    }

    /// The Runtime API the processes poll.
    pub fn runtime_api(&self) -> &RuntimeApi {
        &self.api
    }

    /// How many times a process was restarted after exiting.
    pub fn restarts(&self) -> u64 {
        self.supervisor.restarts.load(Ordering::SeqCst)
    }

    /// The pids of the processes running now.
    pub fn pids(&self) -> Vec<u32> {
        self.supervisor
            .pids
            .lock()
            .map(|p| p.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period) and the Runtime API.
    /// Invocations still running fail with [`InvokeError::Stopped`].
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let slots: Vec<JoinHandle<()>> = self
            .slots
            .lock()
            .map(|mut s| s.drain(..).collect())
            .unwrap_or_default();
        for slot in slots {
            if let Err(error) = slot.await {
                tracing::warn!(function = self.name(), %error, "process supervisor failed");
            }
        }
        self.api.stop();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // Not stopped properly (a panic, an early return): aborting the tasks drops their
        // `Child`ren, which kills them (kill_on_drop).
        if let Ok(slots) = self.slots.lock() {
            for slot in slots.iter() {
                slot.abort();
            }
        }
    }
}

impl Supervisor {
    fn set_pid(&self, slot: usize, pid: Option<u32>) {
        if let Ok(mut pids) = self.pids.lock() {
            if let Some(p) = pids.get_mut(slot) {
                *p = pid;
            }
        }
    }

    fn spawn(&self, slot: usize) -> io::Result<Child> {
        let spec = &self.spec;
        let mut command = Command::new(&spec.program.path);
        command
            .args(&spec.program.args)
            .envs(spec.program.env.iter().map(|(k, v)| (k, v)))
            // What the Lambda service sets, and `lambda_runtime` requires.
            .env("AWS_LAMBDA_RUNTIME_API", &self.runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A safety net: if our task is dropped without a proper stop, the process dies too.
            .kill_on_drop(true);
        // A process group of their own, so a Ctrl-C in the terminal reaches only us: the
        // processes must outlive it long enough to run every connection's $disconnect, and we
        // stop them ourselves afterwards.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        if let Some(out) = child.stdout.take() {
            forward_output(out, spec.name.clone(), pid, false);
        }
        if let Some(err) = child.stderr.take() {
            forward_output(err, spec.name.clone(), pid, true);
        }
        self.set_pid(slot, child.id());
        tracing::debug!(function = spec.name, pid, slot, "process started");
        Ok(child)
    }
}

/// Keeps one slot's process running until `stop`.
async fn supervise(
    slot: usize,
    supervisor: Arc<Supervisor>,
    api: Arc<RuntimeApi>,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
) {
    let name = supervisor.spec.name.clone();
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let pid = child.id().unwrap_or_default();
        tokio::select! {
            status = child.wait() => {
                supervisor.set_pid(slot, None);
                // Invocations this process held fail now (see RuntimeApi::process_exited).
                api.process_exited();
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = RESTART_BACKOFF_MIN;
                }
                match status {
                    Ok(status) => tracing::warn!(
                        function = name,
                        pid,
                        status = %describe(status),
                        restart_in_ms = backoff.as_millis() as u64,
                        "Lambda process exited; restarting it"
                    ),
                    Err(error) => tracing::warn!(
                        function = name,
                        pid,
                        %error,
                        "cannot wait for a Lambda process; restarting it"
                    ),
                }
            }
            _ = stopped(&mut stop) => {
                terminate(child, &name).await;
                supervisor.set_pid(slot, None);
                return;
            }
        }
        // Restart after the backoff; a failed spawn backs off further.
        child = loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
            match supervisor.spawn(slot) {
                Ok(child) => {
                    supervisor.restarts.fetch_add(1, Ordering::SeqCst);
                    break child;
                }
                Err(error) => tracing::error!(
                    function = name,
                    path = %supervisor.spec.program.path.display(),
                    %error,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot restart Lambda process"
                ),
            }
        };
    }
}

/// Waits for the stop signal (or its sender to go). The guard `wait_for` returns is dropped
/// here: it is not `Send`, and the supervising task must be.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// SIGTERM, then SIGKILL if the process is still there after [`STOP_GRACE`] (as Lambda's own
/// shutdown phase does).
async fn terminate(mut child: Child, function: &str) {
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // `id()` is only Some until the child is reaped, and an unreaped pid cannot be reused:
        // this signals our own child, never a stranger.
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) => {
                tracing::debug!(function, pid, status = %describe(status), "process stopped");
                return;
            }
            Ok(Err(error)) => tracing::warn!(function, pid, %error, "waiting for a process"),
            Err(_) => tracing::warn!(function, pid, "process ignored SIGTERM; killing it"),
        }
    }
    if let Err(error) = child.kill().await {
        tracing::warn!(function, %error, "cannot kill a Lambda process");
    }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

/// Copies a process's output into our log, line by line, under the function's name. With
/// `AWS_LAMBDA_LOG_FORMAT=JSON` the lines are JSON records whose `level` we keep; anything else
/// is logged as info (stdout) or warn (stderr: panics land there).
fn forward_output(
    output: impl AsyncRead + Unpin + Send + 'static,
    function: String,
    pid: u32,
    stderr: bool,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(output);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(function, pid, %error, "reading process output");
                    return;
                }
            }
            // Output is whatever the process printed: invalid UTF-8 is shown, not dropped.
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end();
            if !line.is_empty() {
                log_line(&function, pid, stderr, line);
            }
        }
    });
}

fn log_line(function: &str, pid: u32, stderr: bool, line: &str) {
    let record = serde_json::from_str::<serde_json::Value>(line).ok();
    let level = record
        .as_ref()
        .and_then(|v| v.get("level")?.as_str().map(str::to_ascii_uppercase));
    let level = match level.as_deref() {
        Some("ERROR") => tracing::Level::ERROR,
        Some("WARN" | "WARNING") => tracing::Level::WARN,
        Some("DEBUG") => tracing::Level::DEBUG,
        Some("TRACE") => tracing::Level::TRACE,
        Some(_) => tracing::Level::INFO,
        None if stderr => tracing::Level::WARN,
        None => tracing::Level::INFO,
    };
    // A JSON record is shown as its message plus its other fields; anything else as it is.
    let (message, fields) = match record.as_ref().and_then(split_record) {
        Some((message, fields)) => (message, fields),
        None => (line.to_string(), String::new()),
    };
    // `target: "lambda"` lets RUST_LOG filter the functions' output apart from ours.
    match level {
        tracing::Level::ERROR => {
            tracing::error!(target: "lambda", function, pid, fields, "{message}")
        }
        tracing::Level::WARN => {
            tracing::warn!(target: "lambda", function, pid, fields, "{message}")
        }
        tracing::Level::INFO => {
            tracing::info!(target: "lambda", function, pid, fields, "{message}")
        }
        tracing::Level::DEBUG => {
            tracing::debug!(target: "lambda", function, pid, fields, "{message}")
        }
        tracing::Level::TRACE => {
            tracing::trace!(target: "lambda", function, pid, fields, "{message}")
        }
    }
}

/// A tracing JSON record (`{"level", "fields": {"message", ...}, "target", ...}`) as its message
/// and the rest of its fields (JSON, empty when there are none).
fn split_record(record: &serde_json::Value) -> Option<(String, String)> {
    let mut fields = record.get("fields")?.as_object()?.clone();
    let message = match fields.remove("message")? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let fields = if fields.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(fields).to_string()
    };
    Some((message, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_split_into_message_and_fields() {
        let record = serde_json::json!({
            "level": "INFO",
            "fields": { "message": "connected to Redis", "url": "redis://x" },
            "target": "t",
        });
        assert_eq!(
            split_record(&record),
            Some((
                "connected to Redis".to_string(),
                r#"{"url":"redis://x"}"#.to_string()
            ))
        );
        let bare = serde_json::json!({ "fields": { "message": "m" } });
        assert_eq!(split_record(&bare), Some(("m".to_string(), String::new())));
        assert_eq!(split_record(&serde_json::json!({ "msg": "x" })), None);
    }

    #[test]
    fn exit_statuses_read_well() {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exit code 3");
            assert_eq!(describe(ExitStatus::from_raw(9)), "killed by signal 9");
        }
    }
}
