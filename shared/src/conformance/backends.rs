//! The real backends the integration tests run on: whether they are configured here, and
//! DynamoDB tables that are deleted even when the test using them panics.
//!
//! A test that finds its backend unconfigured prints one `SKIPPED` line and returns; CI
//! configures every backend, and each test binary has a test that fails when `CI` is set but a
//! backend is not (see [`in_ci`]), so CI cannot skip them silently.
use std::io::Write as _;

use aws_sdk_dynamodb::Client;

use crate::adapters::aws::{create_table, sdk_config};

/// Set to run the tests against moto (or any emulator `AWS_ENDPOINT_URL` names).
pub const AWS_TESTS_VAR: &str = "YLAMBDA_TEST_AWS";
/// The Redis server the Redis tests use.
pub const REDIS_URL_VAR: &str = "YLAMBDA_REDIS_URL";

/// Written straight to stderr: the test harness captures `println!` / `eprintln!` of passing
/// tests, and a skip must be visible.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether this run is CI's (`CI` set to anything but empty, `false` or `0`).
pub fn in_ci() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    !ci.is_empty() && ci != "false" && ci != "0"
}

/// Whether the AWS-backed tests run here; if not, says that `test` is skipped and how to run it.
/// When they run, `AWS_ENDPOINT_URL` must be set: these tests create tables and buckets and must
/// never fall through to a real account.
pub fn aws_tests_enabled(test: &str) -> bool {
    if std::env::var_os(AWS_TESTS_VAR).is_none() {
        say(&format!(
            "SKIPPED {test}: {AWS_TESTS_VAR} is not set. Run: eval \"$(bash scripts/local-aws.sh start)\"; \
             {AWS_TESTS_VAR}=1 cargo test -p ylambda-shared"
        ));
        return false;
    }
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "{AWS_TESTS_VAR} is set but AWS_ENDPOINT_URL is not: start moto with scripts/local-aws.sh"
    );
    true
}

/// The Redis URL the Redis tests use, if set.
pub fn configured_redis_url() -> Option<String> {
    std::env::var(REDIS_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// The Redis URL the Redis tests use, or `None` after saying that `test` is skipped.
pub fn redis_url(test: &str) -> Option<String> {
    let url = configured_redis_url();
    if url.is_none() {
        say(&format!(
            "SKIPPED {test}: {REDIS_URL_VAR} is not set (eval \"$(bash scripts/local-redis.sh start)\")"
        ));
    }
    url
}

/// A DynamoDB table made for one test (named uniquely, shaped by the adapter's own
/// [`create_table`]). [`TestTable::delete`] removes it; if the test panics first, dropping the
/// value removes it all the same.
pub struct TestTable {
    name: String,
    client: Client,
    deleted: bool,
}

impl TestTable {
    pub async fn create(client: &Client, prefix: &str) -> TestTable {
        let name = super::unique(prefix);
        create_table(client, &name)
            .await
            .unwrap_or_else(|e| panic!("create_table {name}: {e}"));
        TestTable {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn delete(mut self) {
        self.deleted = true;
        delete_table(&self.client, &self.name).await;
    }
}

async fn delete_table(client: &Client, table: &str) {
    if let Err(e) = client.delete_table().table_name(table).send().await {
        say(&format!("cleanup: delete table {table}: {e}"));
    }
}

impl Drop for TestTable {
    /// Runs only when [`TestTable::delete`] did not (a panic, an early return). The test's own
    /// runtime may be the one unwinding, so the delete runs on a runtime and client of its own,
    /// in a thread of its own: the test's client may hold pooled connections driven by the
    /// runtime this thread blocks.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let table = std::mem::take(&mut self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return say(&format!("cleanup: delete table {table}: {e}")),
            };
            runtime.block_on(async {
                let client = Client::new(&sdk_config().await);
                delete_table(&client, &table).await;
            });
        });
        let _ = cleanup.join();
    }
}
