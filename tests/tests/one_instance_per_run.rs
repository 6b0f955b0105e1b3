//! One `https-step run` creates exactly one component instance: the guest
//! validates inside `run` (no separate `validate` call), and a config whose
//! JSON shape is wrong creates none.

use https_step_host::StepRuntime;
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::run_cli;
use std::sync::Arc;

#[test]
fn each_run_instantiates_the_component_once() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtime = StepRuntime::builder().build()?;
    tokio.block_on(async {
        let server = LoopbackServer::http(Arc::new(|_: &_| {
            Reply::json(200, &serde_json::json!({"ok": true}))
        }))
        .await?;
        let dir = std::env::temp_dir().join(format!("https-step-instances-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let step = dir.join("step.json");
        let cases = [
            (format!(r#"{{"url": "{}/x"}}"#, server.origin()), 0, 1),
            // Semantically invalid: refused by the guest inside `run`, before any I/O.
            (
                format!(r#"{{"url": "{}/x", "timeout_ms": 0}}"#, server.origin()),
                1,
                1,
            ),
            // A shape problem: refused before the component is involved.
            (
                format!(r#"{{"url": "{}/x", "timeout_mz": 1}}"#, server.origin()),
                1,
                0,
            ),
        ];
        for (config, exit, instances) in cases {
            std::fs::write(&step, &config)?;
            let before = runtime.instantiations();
            let args: Vec<String> = [
                "run",
                &step.display().to_string(),
                "--allow",
                &server.origin(),
            ]
            .map(String::from)
            .to_vec();
            let run = run_cli(&runtime, &args).await;
            assert_eq!(run.exit, exit, "{config}: {}{}", run.stdout, run.stderr);
            assert_eq!(runtime.instantiations() - before, instances, "{config}");
        }
        assert_eq!(server.requests().len(), 1, "only the valid config was sent");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}
