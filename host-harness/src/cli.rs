//! The `https-step` command line (README "CLI"). The binary is a thin wrapper
//! around [`execute`], which the conformance suite also calls in-process.

use crate::output::{host_error_json, step_result_json};
use crate::{Error, StepRuntime, Tenant, demo};
use https_step_core::{Problem, StepFailure, parse_step_config};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// One subcommand: its synopsis and what it does (with its own options).
struct Subcommand {
    name: &'static str,
    synopsis: &'static str,
    about: &'static str,
}

/// Every subcommand, in the order the usage lists them.
const SUBCOMMANDS: [Subcommand; 5] = [
    Subcommand {
        name: "run",
        synopsis: "https-step run STEP.json [--context CONTEXT.json] [--policy POLICY.toml] [--allow ORIGIN]... [--ca-cert PEM]",
        about: "\
runs the step; prints one JSON object on stdout, progress on stderr.
exit 0: ok (or continued after an error), 1: the step failed, 2: usage.

--allow ORIGIN   allow scheme://host[:port] (port may be *), private addresses
                 and plain http included, e.g. --allow http://127.0.0.1:8080
--ca-cert PEM    trust the CA certificate(s) in this PEM file
--policy FILE    the tenant policy (TOML: allowed_hosts, block_private_networks,
                 ca_certs, resolve, limits); --allow and --ca-cert add to it
--context FILE   the workflow context JSON (default {})
",
    },
    Subcommand {
        name: "validate",
        synopsis: "https-step validate STEP.json [--json]",
        about: "\
prints every problem of the config; exit 0 if valid, 1 if not.
--json prints them as a JSON list of {\"path\", \"message\"}.
",
    },
    Subcommand {
        name: "demo",
        synopsis: "https-step demo",
        about: "runs realistic steps against an embedded HTTPS echo server.\n",
    },
    Subcommand {
        name: "serve-restate",
        synopsis: "https-step serve-restate --policies DIR [--listen ADDR] [--max-concurrency N] [--ingress URL|local]",
        about: "\
serves the step as the Restate service HttpsStep (durable retries and
waits, README \"Durable runs\") until interrupted; tenants are the
*.toml policies in DIR. --listen default 127.0.0.1:9080; the
runtime's run slots (default {max_concurrency}) queue attempts beyond them.
--ingress: the Restate ingress whose object HttpsStepLimits keeps the
tenants' rate limits and back-off windows, shared by every process of
the deployment (default http://127.0.0.1:8080); `local` keeps them in
this process.
",
    },
    Subcommand {
        name: "service-component",
        synopsis: "https-step service-component OUT.wasm",
        about: "\
writes the step as an HTTP service component (wasi:http/incoming-handler:
POST /run, POST /validate, GET /health) for `wasmtime serve OUT.wasm`
and other wasi:http/proxy engines (README \"HTTP service\").
",
    },
];

/// What the full usage adds after the subcommands.
const STEP_NOTES: &str = "\
STEP.json \"body\" is one of (README \"Step config\", \"Files and bytes\"):
  {\"json\": {\"sku\": \"A-1\", \"qty\": 2}}
  {\"form\": [{\"key\": \"name\", \"value\": \"Ada\"}]}
  {\"text\": \"id,qty\\n7,2\", \"content_type\": \"text/csv\"}
  {\"binary\": {\"base64\": \"{{ steps.download.body_base64 }}\", \"content_type\": \"application/pdf\"}}
  {\"multipart\": [{\"name\": \"note\", \"value\": \"hi\"},
                 {\"name\": \"file\", \"filename\": \"scan.pdf\", \"content_type\": \"application/pdf\", \"base64\": \"JVBERi0xLjQ=\"}]}
\"response_format\": \"auto\" (default), \"json\", \"text\" or \"binary\" (body_base64,
content_type and body_sha256 in the output).

The compiled component is cached in $HTTPS_STEP_CACHE_DIR (default
$XDG_CACHE_HOME/https-step or ~/.cache/https-step; set it empty to disable).
";

/// The usage text: every subcommand's synopsis and description.
pub fn usage() -> String {
    let mut text = String::from("usage:\n");
    for c in &SUBCOMMANDS {
        text.push_str(&format!("  {}\n", c.synopsis));
    }
    for c in &SUBCOMMANDS {
        text.push('\n');
        text.push_str(c.name);
        text.push('\n');
        for line in about(c).lines() {
            text.push_str(&format!("  {line}\n").replace("  \n", "\n"));
        }
    }
    text.push('\n');
    text.push_str(STEP_NOTES);
    text
}

/// The help of one subcommand (`https-step run --help`).
fn subcommand_usage(name: &str) -> Option<String> {
    let c = SUBCOMMANDS.iter().find(|c| c.name == name)?;
    let notes = if name == "run" || name == "validate" {
        format!("\n{STEP_NOTES}")
    } else {
        String::new()
    };
    Some(format!("usage: {}\n\n{}{notes}", c.synopsis, about(c)))
}

/// A subcommand's description with the defaults it names filled in from
/// their one home.
fn about(c: &Subcommand) -> String {
    c.about.replace(
        "{max_concurrency}",
        &crate::DEFAULT_MAX_CONCURRENCY.to_string(),
    )
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the step failed or the config is invalid.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad arguments or unreadable files.
pub const EXIT_USAGE: u8 = 2;

/// Where progress lines go; shared because runs report from other tasks.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// The commands, parsed by clap; the usage text stays [`usage`] (clap's own
/// help and version flags are off so every message is the project's).
#[derive(Debug, PartialEq, Eq, clap::Parser)]
#[command(
    name = "https-step",
    disable_help_flag = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
enum Command {
    /// `-h`, `--help`, `help` or nothing: print [`usage`].
    #[command(skip)]
    Help,
    /// `SUBCOMMAND -h` or `SUBCOMMAND --help`: print that subcommand's help.
    #[command(skip)]
    HelpFor(&'static str),
    /// `run STEP.json [--context F] [--policy F] [--allow ORIGIN]... [--ca-cert PEM]`.
    Run {
        step: String,
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        allow: Vec<String>,
        #[arg(long = "ca-cert")]
        ca_cert: Option<String>,
    },
    /// `validate STEP.json [--json]`.
    Validate {
        step: String,
        #[arg(long)]
        json: bool,
    },
    /// `demo`.
    Demo,
    /// `serve-restate --policies DIR [--listen ADDR] [--max-concurrency N] [--ingress URL|local]`.
    ServeRestate {
        #[arg(long)]
        policies: String,
        #[arg(long, default_value = "127.0.0.1:9080")]
        listen: std::net::SocketAddr,
        #[arg(long = "max-concurrency", default_value_t = crate::DEFAULT_MAX_CONCURRENCY)]
        max_concurrency: usize,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        ingress: String,
    },
    /// `service-component OUT.wasm`.
    ServiceComponent { out: String },
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    use clap::Parser as _;
    if matches!(
        args.first().map(String::as_str),
        None | Some("-h" | "--help" | "help")
    ) {
        return Ok(Command::Help);
    }
    // A subcommand's own help, wherever the flag is among its arguments.
    if let Some(c) = SUBCOMMANDS
        .iter()
        .find(|c| args.first().is_some_and(|a| a == c.name))
        && args[1..].iter().any(|a| a == "-h" || a == "--help")
    {
        return Ok(Command::HelpFor(c.name));
    }
    Command::try_parse_from(std::iter::once("https-step").chain(args.iter().map(String::as_str)))
        .map_err(|e| {
            // clap's first line is the problem ("error: unexpected argument …");
            // the usage that follows it is ours.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        })
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {path:?}: {e}"))
}

fn say(err: &SharedWriter, line: &str) {
    let mut w = err.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(w, "{line}");
}

/// Runs the command line `args` (without the program name). `runtime` is
/// used when given, else one is built. Returns the exit code.
pub async fn execute(
    args: &[String],
    runtime: Option<&StepRuntime>,
    out: &mut dyn Write,
    err: SharedWriter,
) -> u8 {
    let command = match parse_args(args) {
        Ok(c) => c,
        Err(msg) => {
            say(&err, &format!("error: {msg}\n\n{}", usage()));
            return EXIT_USAGE;
        }
    };
    match command {
        Command::Help => {
            let _ = write!(out, "{}", usage());
            return EXIT_OK;
        }
        Command::HelpFor(name) => {
            let _ = write!(out, "{}", subcommand_usage(name).unwrap_or_else(usage));
            return EXIT_OK;
        }
        Command::ServeRestate {
            policies,
            listen,
            max_concurrency,
            ingress,
        } => return serve_restate(&policies, listen, max_concurrency, &ingress, &err).await,
        Command::ServiceComponent { out: path } => {
            return match std::fs::write(&path, https_step_guest_artifact::SERVICE_WASM) {
                Ok(()) => {
                    say(
                        &err,
                        &format!(
                            "wrote the service component ({} bytes) to {path}; serve it with `wasmtime serve {path}`",
                            https_step_guest_artifact::SERVICE_WASM.len()
                        ),
                    );
                    EXIT_OK
                }
                Err(e) => {
                    say(&err, &format!("error: cannot write {path}: {e}"));
                    EXIT_USAGE
                }
            };
        }
        _ => {}
    }
    let built;
    let runtime = match runtime {
        Some(r) => r,
        None => match builder().build() {
            Ok(r) => {
                built = r;
                &built
            }
            Err(e) => {
                say(&err, &format!("error: {e}"));
                return EXIT_FAILED;
            }
        },
    };
    let result = match command {
        Command::Help
        | Command::HelpFor(_)
        | Command::ServeRestate { .. }
        | Command::ServiceComponent { .. } => Ok(EXIT_OK),
        Command::Run {
            step,
            context,
            policy,
            allow,
            ca_cert,
        } => run(runtime, &step, context, policy, &allow, ca_cert, out, &err).await,
        Command::Validate { step, json } => validate(runtime, &step, json, out).await,
        Command::Demo => match demo::run(runtime, out).await {
            Ok(all_as_expected) => Ok(if all_as_expected {
                EXIT_OK
            } else {
                EXIT_FAILED
            }),
            Err(demo::Failure::Server(e)) => Err(CliError::Usage(format!(
                "starting the demo server failed: {e}"
            ))),
            Err(demo::Failure::Host(e)) => Err(CliError::Host(e)),
        },
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            say(&err, &format!("error: {msg}"));
            EXIT_USAGE
        }
        Err(CliError::Host(e)) => {
            let _ = writeln!(out, "{}", host_error_json(&e));
            say(&err, &format!("error: {e}"));
            EXIT_FAILED
        }
    }
}

/// How long an attempt of the Restate service waits for a run slot before
/// Restate is told to retry it later.
const DURABLE_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `serve-restate`: the durable service, with its own runtime (attempts
/// beyond `max_concurrency` wait for a slot) and the tenants of `policies`.
async fn serve_restate(
    policies: &str,
    listen: std::net::SocketAddr,
    max_concurrency: usize,
    ingress: &str,
    err: &SharedWriter,
) -> u8 {
    let built = builder()
        .max_concurrency(max_concurrency)
        .slot_wait(DURABLE_SLOT_WAIT)
        .build();
    let limits = |ingress: &str| -> Result<Option<Arc<dyn crate::limits::SharedLimits>>, Error> {
        Ok(match ingress {
            "local" => None,
            url => Some(Arc::new(crate::durable::RestateLimits::new(url)?)),
        })
    };
    let service = match built.and_then(|runtime| {
        crate::durable::DurableService::from_policy_dir(
            runtime,
            std::path::Path::new(policies),
            limits(ingress)?,
        )
    }) {
        Ok(service) => service,
        Err(e) => {
            say(err, &format!("error: {e}"));
            return EXIT_USAGE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            say(err, &format!("error: cannot listen on {listen}: {e}"));
            return EXIT_USAGE;
        }
    };
    let at = listener
        .local_addr()
        .map_or_else(|_| listen.to_string(), |a| a.to_string());
    say(
        err,
        &format!(
            "serving the Restate service HttpsStep for {} tenant(s) on http://{at}; register it with restate-server: POST /deployments {{\"uri\": \"http://{at}\"}}",
            service.tenants()
        ),
    );
    service.serve(listener).await;
    EXIT_OK
}

/// A runtime builder with the CLI's settings: the compiled component cached
/// in [`default_cache_dir`].
fn builder() -> crate::RuntimeBuilder {
    default_cache_dir().map_or_else(StepRuntime::builder, |dir| {
        StepRuntime::builder().cache_dir(dir)
    })
}

/// Where the CLI keeps the compiled component: `$HTTPS_STEP_CACHE_DIR` (empty
/// disables), else `$XDG_CACHE_HOME/https-step`, else `~/.cache/https-step`.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("HTTPS_STEP_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(dir.into()),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
            })
            .map(|d| d.join("https-step")),
    }
}

/// A command's failure outside the step's own outcome.
#[derive(Debug)]
pub(crate) enum CliError {
    Usage(String),
    Host(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Host(e)
    }
}

/// Reads a step config: the config and the JSON's shape problems.
fn load_config(path: &str) -> Result<https_step_core::ParsedConfig, CliError> {
    let bytes = read(path, "step config").map_err(CliError::Usage)?;
    Ok(parse_step_config(&String::from_utf8_lossy(&bytes)))
}

async fn validate(
    runtime: &StepRuntime,
    step: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let parsed = load_config(step)?;
    let mut problems = parsed.problems;
    if !problems.first().is_some_and(Problem::is_whole_document) {
        problems.extend(runtime.validate(&parsed.config).await?);
    }
    if json {
        let _ = writeln!(out, "{}", https_step_core::output::problems_json(&problems));
    } else if problems.is_empty() {
        let _ = writeln!(out, "{step}: valid");
    } else {
        for p in &problems {
            let _ = writeln!(out, "{p}");
        }
    }
    Ok(if problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

#[allow(clippy::too_many_arguments, reason = "one parameter per CLI option")]
async fn run(
    runtime: &StepRuntime,
    step: &str,
    context: Option<String>,
    policy: Option<String>,
    allow: &[String],
    ca_cert: Option<String>,
    out: &mut dyn Write,
    err: &SharedWriter,
) -> Result<u8, CliError> {
    let mut tenant = match policy {
        Some(path) => Tenant::from_policy_file(std::path::Path::new(&path))
            .map_err(|e| CliError::Usage(e.to_string()))?,
        None => Tenant::builder("cli"),
    };
    for origin in allow {
        tenant = tenant
            .allow(origin)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    if let Some(path) = ca_cert {
        let pem = read(&path, "CA certificate").map_err(CliError::Usage)?;
        tenant = tenant
            .ca_certs_pem(&pem)
            .map_err(|e| CliError::Usage(format!("{path}: {e}")))?;
    }
    let tenant = Arc::new(tenant.build().map_err(|e| CliError::Usage(e.to_string()))?);
    let context = match context {
        Some(path) => {
            String::from_utf8_lossy(&read(&path, "context").map_err(CliError::Usage)?).into_owned()
        }
        None => "{}".to_string(),
    };
    let parsed = load_config(step)?;
    // One instance per run: the component validates inside `run` and fails
    // with invalid-config before any I/O. A config whose JSON shape is
    // already wrong never reaches it; its semantic problems come from the
    // same core code, natively, so every problem is still listed at once.
    let result = match https_step_core::validate::ready(parsed) {
        Ok(config) => {
            let sink = err.clone();
            let progress = Arc::new(move |line: &str| say(&sink, line));
            runtime.run(&tenant, &config, &context, progress).await?
        }
        Err(problems) => Err(StepFailure::invalid_config(problems)),
    };
    if let Err(failure) = &result {
        say(
            err,
            &format!("step failed ({}): {}", failure.error.kind(), failure.error),
        );
    }
    let _ = writeln!(out, "{}", step_result_json(&result));
    Ok(if result.is_ok() { EXIT_OK } else { EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse_args(&[]), Ok(Command::Help));
        assert_eq!(
            parse_args(&args(
                "run s.json --allow http://a:1 --allow https://b --context c.json --ca-cert ca.pem"
            )),
            Ok(Command::Run {
                step: "s.json".into(),
                context: Some("c.json".into()),
                policy: None,
                allow: vec!["http://a:1".into(), "https://b".into()],
                ca_cert: Some("ca.pem".into())
            })
        );
        assert_eq!(
            parse_args(&args("validate s.json --json")),
            Ok(Command::Validate {
                step: "s.json".into(),
                json: true
            })
        );
        assert_eq!(parse_args(&args("demo")), Ok(Command::Demo));
        assert_eq!(
            parse_args(&args(
                "serve-restate --policies p --listen 127.0.0.1:0 --max-concurrency 8"
            )),
            Ok(Command::ServeRestate {
                policies: "p".into(),
                listen: "127.0.0.1:0".parse().expect("addr"),
                max_concurrency: 8,
                ingress: "http://127.0.0.1:8080".into(),
            })
        );
        assert_eq!(
            parse_args(&args("service-component s.wasm")),
            Ok(Command::ServiceComponent {
                out: "s.wasm".into()
            })
        );
        assert_eq!(
            parse_args(&args("serve-restate --policies p")),
            Ok(Command::ServeRestate {
                policies: "p".into(),
                listen: "127.0.0.1:9080".parse().expect("addr"),
                max_concurrency: crate::DEFAULT_MAX_CONCURRENCY,
                ingress: "http://127.0.0.1:8080".into(),
            })
        );
        for bad in [
            "run",
            "frob",
            "run a b",
            "validate s.json --allow x",
            "run s.json --allow",
            "demo x",
            "serve-restate",
            "serve-restate --policies p --listen nowhere",
            "service-component",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }

    /// `--help` after a subcommand is that subcommand's help; anywhere else
    /// a flag like any other.
    #[test]
    fn every_subcommand_has_its_help() {
        for c in &SUBCOMMANDS {
            for flag in ["--help", "-h"] {
                assert_eq!(
                    parse_args(&args(&format!("{} {flag}", c.name))),
                    Ok(Command::HelpFor(c.name))
                );
            }
            let help = subcommand_usage(c.name).expect("help");
            assert!(
                help.starts_with(&format!("usage: {}", c.synopsis)),
                "{help}"
            );
            assert!(usage().contains(c.synopsis));
        }
        assert_eq!(
            parse_args(&args("run s.json --allow x --help")),
            Ok(Command::HelpFor("run"))
        );
        assert_eq!(parse_args(&args("--help")), Ok(Command::Help));
    }

    /// Every body example in the usage text is a valid body of a POST.
    #[test]
    fn usage_body_examples_are_valid() {
        let text = STEP_NOTES
            .split("is one of")
            .nth(1)
            .and_then(|t| t.split("\"response_format\"").next())
            .unwrap_or_default();
        let examples: Vec<String> = text
            .split("\n  {")
            .skip(1)
            .map(|e| format!("{{{}", e.trim()))
            .collect();
        assert_eq!(examples.len(), 5, "{text}");
        for example in examples {
            let step = format!(
                r#"{{"url": "https://api.example.com/x", "method": "POST", "body": {example}}}"#
            );
            let parsed = parse_step_config(&step);
            assert!(
                parsed.problems.is_empty(),
                "{example}: {:?}",
                parsed.problems
            );
            assert!(
                https_step_core::validate(&parsed.config).is_empty(),
                "{example}"
            );
        }
    }
}
