//! The `https-step` binary as a user runs it: exit codes, usage errors and the
//! demo. (Behaviour of `run` is covered case by case in `tests/cases/`.)

use std::process::{Command, Output};

fn https_step(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_https-step"))
        .args(args)
        // Keep the compiled-component cache inside the build directory.
        .env("HTTPS_STEP_CACHE_DIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("the https-step binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_runs_every_step_end_to_end() {
    let out = https_step(&["demo"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for needle in [
        "→ the server received: POST /v1/orders",
        "content-type: application/json",
        "authorization: *** (redacted)",
        "← 201",
        "GET /v1/orders?status=open&customer=Ada%20Lovelace%20%26%20Co%2FLtd",
        "← 404",
        "continued after error (unexpected-status)",
        "persona-signature: t=",
        "idempotency-key: ",
        "attempt 1 got 503; waited 200 ms (interval) before retrying",
        "← 200 in",
        "4 steps run, 5 requests received",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("demo-token-123"),
        "the demo printed a credential"
    );
    assert!(
        !stdout.contains("wbhsec_demo_secret"),
        "the demo printed the signing secret"
    );
}

#[test]
fn help_on_every_subcommand_exits_0_with_its_usage() {
    for (sub, synopsis) in [
        ("run", "usage: https-step run STEP.json"),
        ("validate", "usage: https-step validate STEP.json"),
        ("demo", "usage: https-step demo"),
        (
            "serve-restate",
            "usage: https-step serve-restate --policies DIR",
        ),
        (
            "service-component",
            "usage: https-step service-component OUT.wasm",
        ),
    ] {
        let out = https_step(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with(synopsis),
            "{sub}: {}",
            text(&out.stdout)
        );
        assert!(out.stderr.is_empty(), "{sub}: {}", text(&out.stderr));
    }
    let out = https_step(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("usage:\n  https-step run"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["run"],
        &["run", "a.json", "--allow"],
        &["run", "/nonexistent/step.json"],
        &["validate", "x.json", "--bogus"],
    ] {
        let out = https_step(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("error:"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

#[test]
fn bad_allow_entry_and_unreadable_ca_exit_2() {
    let dir = std::env::temp_dir().join(format!("https-step-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let step = dir.join("step.json");
    std::fs::write(&step, r#"{"url": "https://api.example.com"}"#).expect("write");
    let step = step.to_string_lossy().into_owned();
    let out = https_step(&["run", &step, "--allow", "127.0.0.1:80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("write scheme://host[:port]"),
        "{}",
        text(&out.stderr)
    );
    let out = https_step(&["run", &step, "--ca-cert", "/nonexistent.pem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read CA certificate"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_prints_problems_for_people_and_as_json() {
    let dir = std::env::temp_dir().join(format!("https-step-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"url": "ftp://x", "method": "GET", "body": {"text": "x"}}"#,
    )
    .expect("write");
    let good = dir.join("good.json");
    std::fs::write(&good, r#"{"url": "https://api.example.com/x"}"#).expect("write");
    let (bad, good) = (
        bad.to_string_lossy().into_owned(),
        good.to_string_lossy().into_owned(),
    );

    let out = https_step(&["validate", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("url: scheme \"ftp\" is not supported"),
        "{stdout}"
    );
    assert!(
        stdout.contains("body: a GET request cannot carry a body"),
        "{stdout}"
    );

    let out = https_step(&["validate", &bad, "--json"]);
    let problems: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(problems.as_array().map(Vec::len), Some(2), "{problems}");

    let out = https_step(&["validate", &good]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).ends_with(": valid\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_goes_to_stdout() {
    let out = https_step(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("https-step run STEP.json"));
}

/// The README's "Two commands" are what `.ci/run` runs, verbatim, and the
/// first of them resolves to this binary (one binary among the workspace's
/// default members, so `cargo run` needs no `--bin`).
#[test]
fn readme_commands_are_what_ci_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    let section = readme
        .split("## Two commands")
        .nth(1)
        .expect("a \"Two commands\" section");
    let block = section.split("```").nth(1).expect("a code block in it");
    let commands: Vec<&str> = block
        .lines()
        .skip(1)
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- demo", "cargo test --release"],
        "{block}"
    );
    for command in commands {
        assert!(
            ci.lines().any(|l| l.trim() == command),
            ".ci/run does not run {command:?} verbatim:\n{ci}"
        );
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split("default-members")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("default-members");
    let binaries: Vec<String> = members
        .split('"')
        .skip(1)
        .step_by(2)
        .flat_map(|member| {
            let dir = root.join(member);
            let toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
            let mut bins: Vec<String> = toml
                .matches("[[bin]]")
                .map(|_| member.to_string())
                .collect();
            if dir.join("src/main.rs").exists() {
                bins.push(format!("{member}/src/main.rs"));
            }
            // Files in src/bin/ are binaries too unless a [[bin]] already names them.
            for entry in std::fs::read_dir(dir.join("src/bin"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = format!("src/bin/{}", entry.file_name().to_string_lossy());
                if !toml.contains(&path) {
                    bins.push(format!("{member}/{path}"));
                }
            }
            bins
        })
        .collect();
    assert_eq!(
        binaries,
        ["host-harness"],
        "`cargo run --release -- demo` needs exactly one binary among the default members"
    );
}
